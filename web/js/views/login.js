// Log in or create an account.

import { h } from '../dom.js';
import { t, languages, lang } from '../i18n.js';
import { icon } from '../icons.js';
import { errorText } from '../errors.js';

export function loginView(app, mode = 'login') {
  const registering = mode === 'register';
  const error = h('p', { class: 'error', role: 'alert' });
  const username = h('input', { id: 'lg-user', name: 'username', autocomplete: 'username', required: true, minlength: '3', maxlength: '32' });
  const password = h('input', { id: 'lg-pass', name: 'password', type: 'password', autocomplete: registering ? 'new-password' : 'current-password', required: true, minlength: '8' });
  const nickname = h('input', { id: 'lg-nick', name: 'nickname', autocomplete: 'nickname', maxlength: '64' });
  const submit = h('button', { type: 'submit', class: 'primary' }, registering ? t('register') : t('login'));
  const form = h('form', { class: 'form login-form', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, h('span', { class: 'logo' }, icon('chat', 34)), ' natter'),
    h('h2', null, registering ? t('register') : t('login')),
    h('label', { for: 'lg-user' }, t('username')), username,
    h('label', { for: 'lg-pass' }, t('password')), password,
    registering ? [h('label', { for: 'lg-nick' }, t('nickname')), nickname] : null,
    error, submit,
    h('button', { type: 'button', class: 'link', onclick: () => app.showLogin(registering ? 'login' : 'register') },
      registering ? t('haveAccount') : t('noAccount')),
    h('select', { 'aria-label': t('language'), class: 'lang', onchange: (e) => { app.switchLanguage(e.target.value); } },
      languages.map(([code, label]) => h('option', { value: code, selected: code === lang() }, label))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.textContent = '';
    try {
      if (registering) await app.api.register(username.value.trim(), password.value, nickname.value.trim());
      else await app.api.login(username.value.trim(), password.value);
      await app.enter();
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      submit.disabled = false;
    }
  });
  setTimeout(() => username.focus());
  return h('main', { class: 'login' }, form);
}
