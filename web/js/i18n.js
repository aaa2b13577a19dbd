// English and Simplified Chinese. The language comes from the saved choice, else the browser's.

const en = {
  app: 'natter',
  login: 'Log in', register: 'Create account', logout: 'Log out',
  username: 'Username', password: 'Password', nickname: 'Display name', bio: 'About me',
  haveAccount: 'Have an account? Log in', noAccount: 'New here? Create an account',
  language: 'Language', chats: 'Chats', contacts: 'Contacts', search: 'Search',
  searchMessages: 'Search messages', searchPeople: 'Find people by username or name',
  noResults: 'Nothing found', addFriend: 'Add friend', requested: 'Requested',
  friends: 'Friends', incoming: 'Friend requests', outgoing: 'Sent requests',
  accept: 'Accept', reject: 'Decline', cancel: 'Cancel', online: 'online', offline: 'offline',
  newGroup: 'New group', groupName: 'Group name', create: 'Create', members: 'Members',
  membersCount: '{n} members', noChats: 'No conversations yet. Add a friend to start chatting.',
  pickChat: 'Pick a conversation', typing: '{name} is typing…', typingMany: 'Several people are typing…',
  messagePlaceholder: 'Write a message', send: 'Send', attach: 'Attach a file', image: 'Send an image',
  record: 'Record a voice message', stopRecording: 'Stop and send', recording: 'Recording… {s}s',
  reply: 'Reply', react: 'React', edit: 'Edit', recall: 'Recall', edited: 'edited',
  recalled: 'This message was recalled', replyingTo: 'Replying to {name}', editing: 'Editing message',
  sending: 'Sending…', failed: 'Not sent', retry: 'Retry', uploading: 'Uploading {p}%',
  today: 'Today', yesterday: 'Yesterday', back: 'Back', close: 'Close', save: 'Save',
  profile: 'Profile', avatar: 'Avatar', changeAvatar: 'Change avatar', groupInfo: 'Group info',
  rename: 'Rename', leave: 'Leave group', dissolve: 'Dissolve group', remove: 'Remove',
  addMembers: 'Add members', add: 'Add', role_owner: 'owner', role_admin: 'admin', role_member: 'member',
  makeAdmin: 'Make admin', makeMember: 'Make member', confirmLeave: 'Leave this group?',
  confirmDissolve: 'Dissolve this group for everyone?', confirmRecall: 'Recall this message?',
  conn_online: 'Connected', conn_connecting: 'Connecting…', conn_offline: 'Offline — reconnecting',
  notifications: 'Enable notifications', loadingOlder: 'Loading older messages…',
  startOfChat: 'Start of the conversation', voice: 'Voice message', file: 'File', photo: 'Photo',
  transcript: 'Transcript', transcribing: 'Transcribing…', download: 'Download',
  sys_group_created: '{actor} created the group', sys_members_added: '{actor} added {users}',
  sys_member_removed: '{actor} removed {users}', sys_member_left: '{actor} left',
  sys_renamed: '{actor} renamed the group to “{name}”', sys_announcement_changed: '{actor} changed the announcement',
  sys_avatar_changed: '{actor} changed the group picture', sys_role_changed: '{actor} made {users} {role}',
  sys_owner_transferred: '{actor} handed the group to {users}', sys_dissolved: '{actor} dissolved the group',
  you: 'You', unreadBadge: '{n} unread', messageFrom: 'Message from {name}', mention: 'Mention {name}',
  jumpToLatest: 'Jump to latest', error: 'Something went wrong: {msg}', menu: 'Menu',
  chatWith: 'Conversation with {name}', messages: 'Messages', dissolvedNote: 'This group was dissolved',
  micDenied: 'Microphone not available',
  queued: 'Waiting for the connection…',
  offlineNotice: 'You are offline. Messages you send now go out when the connection is back.',
  removedNote: 'You were removed from this group', leftNote: 'You left this group',
  removedComposer: 'You were removed from this group, so you cannot send messages here.',
  dissolvedComposer: 'This group was dissolved, so no messages can be sent here.',
  leftComposer: 'You left this group, so you cannot send messages here.',
};

const zh = {
  app: 'natter',
  login: '登录', register: '注册账号', logout: '退出登录',
  username: '用户名', password: '密码', nickname: '昵称', bio: '个人简介',
  haveAccount: '已有账号？去登录', noAccount: '第一次来？注册账号',
  language: '语言', chats: '会话', contacts: '联系人', search: '搜索',
  searchMessages: '搜索消息', searchPeople: '按用户名或昵称查找用户',
  noResults: '没有找到结果', addFriend: '加为好友', requested: '已发送',
  friends: '好友', incoming: '好友申请', outgoing: '已发送的申请',
  accept: '接受', reject: '拒绝', cancel: '取消', online: '在线', offline: '离线',
  newGroup: '新建群聊', groupName: '群名称', create: '创建', members: '成员',
  membersCount: '{n} 位成员', noChats: '还没有会话。添加好友即可开始聊天。',
  pickChat: '选择一个会话', typing: '{name} 正在输入…', typingMany: '多人正在输入…',
  messagePlaceholder: '输入消息', send: '发送', attach: '发送文件', image: '发送图片',
  record: '录制语音消息', stopRecording: '停止并发送', recording: '正在录音… {s} 秒',
  reply: '回复', react: '表情回应', edit: '编辑', recall: '撤回', edited: '已编辑',
  recalled: '此消息已撤回', replyingTo: '回复 {name}', editing: '正在编辑消息',
  sending: '发送中…', failed: '发送失败', retry: '重试', uploading: '上传中 {p}%',
  today: '今天', yesterday: '昨天', back: '返回', close: '关闭', save: '保存',
  profile: '个人资料', avatar: '头像', changeAvatar: '更换头像', groupInfo: '群信息',
  rename: '重命名', leave: '退出群聊', dissolve: '解散群聊', remove: '移除',
  addMembers: '添加成员', add: '添加', role_owner: '群主', role_admin: '管理员', role_member: '成员',
  makeAdmin: '设为管理员', makeMember: '取消管理员', confirmLeave: '确定退出该群聊？',
  confirmDissolve: '确定为所有人解散该群聊？', confirmRecall: '确定撤回这条消息？',
  conn_online: '已连接', conn_connecting: '连接中…', conn_offline: '网络已断开，正在重连',
  notifications: '开启桌面通知', loadingOlder: '正在加载更早的消息…',
  startOfChat: '会话开始', voice: '语音消息', file: '文件', photo: '图片',
  transcript: '语音转文字', transcribing: '正在转写…', download: '下载',
  sys_group_created: '{actor} 创建了群聊', sys_members_added: '{actor} 邀请了 {users}',
  sys_member_removed: '{actor} 移除了 {users}', sys_member_left: '{actor} 退出了群聊',
  sys_renamed: '{actor} 将群名称改为“{name}”', sys_announcement_changed: '{actor} 修改了群公告',
  sys_avatar_changed: '{actor} 更换了群头像', sys_role_changed: '{actor} 将 {users} 设为{role}',
  sys_owner_transferred: '{actor} 将群主转让给 {users}', sys_dissolved: '{actor} 解散了群聊',
  you: '你', unreadBadge: '{n} 条未读', messageFrom: '来自 {name} 的消息', mention: '提及 {name}',
  jumpToLatest: '回到最新消息', error: '出错了：{msg}', menu: '菜单',
  chatWith: '与 {name} 的会话', messages: '消息', dissolvedNote: '该群聊已解散',
  micDenied: '无法使用麦克风',
  queued: '等待网络连接…',
  offlineNotice: '当前处于离线状态。现在发送的消息会在网络恢复后自动发出。',
  removedNote: '你已被移出该群聊', leftNote: '你已退出该群聊',
  removedComposer: '你已被移出该群聊，无法在此发送消息。',
  dissolvedComposer: '该群聊已解散，无法在此发送消息。',
  leftComposer: '你已退出该群聊，无法在此发送消息。',
};

const dictionaries = { en, 'zh-CN': zh };
export const languages = [['en', 'English'], ['zh-CN', '简体中文']];

let current = pick();

function pick() {
  const saved = localStorage.getItem('natter.lang');
  if (saved && dictionaries[saved]) return saved;
  return (navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
}

export function lang() {
  return current;
}

export function setLang(code) {
  if (!dictionaries[code]) return;
  current = code;
  localStorage.setItem('natter.lang', code);
  document.documentElement.lang = code;
}

export function t(key, vars) {
  let text = dictionaries[current][key] ?? en[key] ?? key;
  if (vars) text = text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? ''));
  return text;
}

export function formatTime(iso) {
  return new Date(iso).toLocaleTimeString(current, { hour: '2-digit', minute: '2-digit' });
}

export function formatDay(iso) {
  const day = new Date(iso);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (day.toDateString() === today.toDateString()) return t('today');
  if (day.toDateString() === yesterday.toDateString()) return t('yesterday');
  return day.toLocaleDateString(current, { year: 'numeric', month: 'long', day: 'numeric', weekday: 'short' });
}
