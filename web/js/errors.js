// What went wrong, in the reader's language. The server's error codes (docs/API.md, "Errors")
// map to sentences; its `message` is English and only shown, as a last resort, in English.

import { t, lang } from './i18n.js';

const en = {
  network: 'Cannot reach the server. Check your connection and try again.',
  internal: 'The server ran into a problem. Try again in a moment.',
  invalid_json: 'The request could not be read.', validation_failed: 'Some of what was entered is not valid.',
  invalid_username: 'Usernames are 3–32 letters, digits, “_”, “.” or “-”, starting with a letter or digit.',
  weak_password: 'The password needs 8–128 characters and must not be the username.',
  invalid_nickname: 'The display name is too long or empty.', invalid_bio: 'The text about you is too long.',
  invalid_avatar: 'That picture cannot be used as an avatar.', invalid_name: 'The group name is too long or empty.',
  invalid_announcement: 'The announcement is too long.', invalid_role: 'That role does not exist.',
  empty_text: 'The message is empty.', text_too_long: 'The message is too long.', payload_too_large: 'That is too much at once.',
  too_many_mentions: 'Too many people mentioned in one message.', invalid_emoji: 'That reaction is not available.',
  not_editable: 'This message cannot be edited.', invalid_reply_to: 'The message you replied to is not there.',
  file_required: 'Choose a file first.', file_not_found: 'The file is gone. Attach it again.',
  file_kind_mismatch: 'That file is not the right kind (an image or a recording).', upload_failed: 'The upload broke off. Try again.',
  file_too_large: 'The file is too large.', quota_exceeded: 'Your storage is full: remove some files first.',
  cannot_befriend_self: 'You cannot add yourself as a friend.', invalid_message: 'The request message is too long.',
  cannot_change_own_role: 'You cannot change your own role.',
  query_too_short: 'Type a little more to search.', query_too_long: 'The search is too long.', invalid_query: 'That search cannot be run.',
  unauthorized: 'Your session has ended. Log in again.', invalid_credentials: 'Wrong username or password.',
  invalid_refresh_token: 'Your session has ended. Log in again.', refresh_token_reused: 'Your session has ended. Log in again.',
  forbidden: 'You are not allowed to do that.', blocked: 'You cannot message this person.',
  not_friends: 'You can only message friends.', not_a_group: 'That only works in groups.',
  account_disabled: 'This account is disabled.', not_found: 'That is not there any more.',
  username_taken: 'That username is taken. Choose another one.', already_friends: 'You are friends already.',
  request_pending: 'A friend request is already waiting.', request_not_pending: 'That request was already answered.',
  group_full: 'The group is full.', owner_must_transfer: 'Hand the group to someone else before leaving, or dissolve it.',
  message_recalled: 'That message was recalled.', client_msg_id_reused: 'This message was already sent differently.',
  too_many_attempts: 'Too many tries. Wait a little and try again.',
  speech_unavailable: 'Speech-to-text is not set up on this server.', speech_busy: 'Speech-to-text is busy. Try again later.',
  speech_failed: 'Speech-to-text failed. Try again later.', unsupported_audio: 'That recording format is not supported.',
  audio_too_large: 'The recording is too large.', audio_too_long: 'The recording is too long.',
  not_member: 'You are not a member of this group any more.', dissolved: 'This group was dissolved.',
};

const zh = {
  network: '无法连接服务器，请检查网络后重试。',
  internal: '服务器出现问题，请稍后重试。',
  invalid_json: '请求无法读取。', validation_failed: '填写的内容有误。',
  invalid_username: '用户名为 3–32 个字母、数字、“_”、“.”或“-”，以字母或数字开头。',
  weak_password: '密码需要 8–128 个字符，且不能与用户名相同。',
  invalid_nickname: '昵称为空或过长。', invalid_bio: '个人简介过长。',
  invalid_avatar: '这张图片不能用作头像。', invalid_name: '群名称为空或过长。',
  invalid_announcement: '群公告过长。', invalid_role: '没有这个角色。',
  empty_text: '消息为空。', text_too_long: '消息过长。', payload_too_large: '一次提交的内容过多。',
  too_many_mentions: '一条消息提及的人过多。', invalid_emoji: '不支持这个表情。',
  not_editable: '这条消息不能编辑。', invalid_reply_to: '回复的消息不存在。',
  file_required: '请先选择文件。', file_not_found: '文件已不存在，请重新添加。',
  file_kind_mismatch: '文件类型不对（需要图片或录音）。', upload_failed: '上传中断，请重试。',
  file_too_large: '文件过大。', quota_exceeded: '存储空间已满，请先删除一些文件。',
  cannot_befriend_self: '不能添加自己为好友。', invalid_message: '申请附言过长。',
  cannot_change_own_role: '不能修改自己的角色。',
  query_too_short: '请多输入几个字再搜索。', query_too_long: '搜索内容过长。', invalid_query: '无法执行这个搜索。',
  unauthorized: '登录已失效，请重新登录。', invalid_credentials: '用户名或密码错误。',
  invalid_refresh_token: '登录已失效，请重新登录。', refresh_token_reused: '登录已失效，请重新登录。',
  forbidden: '你没有权限这样做。', blocked: '无法给此人发消息。',
  not_friends: '只能给好友发消息。', not_a_group: '只有群聊可以这样做。',
  account_disabled: '该账号已被停用。', not_found: '内容已不存在。',
  username_taken: '该用户名已被占用，请换一个。', already_friends: '你们已经是好友了。',
  request_pending: '已有一条待处理的好友申请。', request_not_pending: '该申请已被处理。',
  group_full: '群成员已满。', owner_must_transfer: '请先把群转让给他人再退出，或解散该群。',
  message_recalled: '该消息已被撤回。', client_msg_id_reused: '这条消息已以不同内容发送过。',
  too_many_attempts: '尝试次数过多，请稍后再试。',
  speech_unavailable: '服务器未配置语音转文字。', speech_busy: '语音转文字繁忙，请稍后再试。',
  speech_failed: '语音转文字失败，请稍后再试。', unsupported_audio: '不支持这种录音格式。',
  audio_too_large: '录音文件过大。', audio_too_long: '录音过长。',
  not_member: '你已不是该群成员。', dissolved: '该群聊已解散。',
};

const dictionaries = { en, 'zh-CN': zh };

/** The code of an error: the server's, `network` when there was no answer, `internal` for 5xx. */
export function errorCode(error) {
  if (typeof error === 'string') return error;
  if (!error?.status) return error?.code && error.code !== 'network' ? error.code : 'network';
  if (error.status >= 500) return 'internal';
  return error.code;
}

/** A sentence for the person; the expected errors read as plain sentences. */
export function errorText(error) {
  const code = errorCode(error);
  const known = dictionaries[lang()]?.[code];
  if (known) return known;
  // An error this client does not know: the server's English words in English, else the code.
  return t('error', { msg: lang() === 'en' && error?.message ? error.message : code });
}
