/* Chat simulator for the Telegram sandbox (and its Zalo side): vanilla JS, talks to
   /sandbox/api and, when Zalo is on, /zalo/sandbox/api. */
"use strict";

const API = "/sandbox/api";
const ZALO_API = "/zalo/sandbox/api";
const ZALO_PREFIX = "zalo:";
const ZALO_WAIT = 25;
const SAFE_URL = /^(https?:|tg:|mailto:)/i;
const TAGS = {
  bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code",
  blockquote: "blockquote", expandable_blockquote: "blockquote",
};
const ZONE = "Asia/Ho_Chi_Minh";
/* Every label the script shows; the page's own labels are in index.html. */
const TEXT = {
  otherUsers: "Người dùng khác",
  createUserBelow: "Hãy tạo người dùng ở ô bên dưới",
  privateChat: "Trò chuyện riêng với bot",
  live: "trực tuyến",
  reconnecting: "đang kết nối lại",
  deleted: "đã xóa",
  edited: "đã sửa",
  photo: "Ảnh",
  bot: "Bot",
  unavailable: "Không kết nối được máy chủ mô phỏng",
  zalo: "Zalo",
  zaloBot: "Bot Zalo",
  zaloChat: "Trò chuyện Zalo với bot",
  zaloOa: "Trò chuyện Zalo với Official Account",
  typing: "đang soạn tin…",
};
const CLOCK = new Intl.DateTimeFormat("vi-VN", {
  timeZone: ZONE, hour: "2-digit", minute: "2-digit", hourCycle: "h23",
});
const DAY = new Intl.DateTimeFormat("vi-VN", {
  timeZone: ZONE, day: "2-digit", month: "2-digit", year: "numeric",
});
const NARROW = window.matchMedia("(max-width: 720px)");
const state = {
  personas: [], users: [], chats: [], userId: null, chatId: null,
  source: null, hadError: false, pending: new Map(),
  zaloPersonas: [], zalo: null, zaloRun: 0,
};
const $ = (id) => document.getElementById(id);

/* ---------- API ---------- */

async function api(path, options = {}) {
  const response = await fetch(API + path, options);
  const body = await response.json();
  if (!body.ok) throw new Error(body.description || response.statusText);
  return body.result;
}

function postJson(path, data) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json; charset=utf-8" },
    body: JSON.stringify(data),
  });
}

/* ---------- people and chats ---------- */

async function loadPeople() {
  [state.personas, state.users, state.chats, state.zaloPersonas] = await Promise.all([
    api("/personas"), api("/users"), api("/chats"), zaloApi("/personas").catch(() => []),
  ]);
}

/* The Zalo side answers 404 when the sandbox runs without it. */
async function zaloApi(path, options = {}) {
  const response = await fetch(ZALO_API + path, options);
  if (response.status === 404 && path === "/personas") return [];
  const body = await response.json();
  if (!body.ok) throw new Error(body.description || response.statusText);
  return body.result;
}

function userName(user) {
  return [user.first_name, user.last_name].filter(Boolean).join(" ");
}

function option(value, label) {
  const el = document.createElement("option");
  el.value = String(value);
  el.textContent = label;
  return el;
}

function fillPersonaPicker() {
  const picker = $("persona-picker");
  picker.replaceChildren();
  const personaUsers = new Set(state.personas.map((p) => p.user_id));
  for (const persona of state.personas) {
    const el = option(persona.user_id, `${persona.label} - ${persona.role}, ${persona.unit}`);
    el.dataset.personaId = persona.id;
    picker.append(el);
  }
  const others = state.users.filter((u) => !personaUsers.has(u.id));
  const group = state.personas.length ? document.createElement("optgroup") : picker;
  if (state.personas.length && others.length) {
    group.label = TEXT.otherUsers;
    picker.append(group);
  }
  for (const user of others) group.append(option(user.id, `${userName(user)} (${user.id})`));
  if (state.zaloPersonas.length) {
    const zalo = document.createElement("optgroup");
    zalo.label = TEXT.zalo;
    for (const persona of state.zaloPersonas) {
      const el = option(ZALO_PREFIX + persona.user_id,
        `${persona.label} - ${persona.role}, ${persona.unit} (${TEXT.zalo})`);
      el.dataset.personaId = persona.id;
      el.dataset.channel = "zalo";
      zalo.append(el);
    }
    picker.append(zalo);
  }
  if (!picker.options.length) picker.append(option("", TEXT.createUserBelow));
  $("composer").querySelectorAll("textarea, button, input").forEach((el) => {
    el.disabled = !picker.options.length || picker.value === "";
  });
}

function personaFor(userId) {
  return state.personas.find((p) => p.user_id === userId) || null;
}

function selectUser(userId) {
  leaveZalo();
  state.userId = userId;
  $("persona-picker").value = String(userId);
  const persona = personaFor(userId);
  $("persona-info").textContent = persona ? `${persona.role}\n${persona.unit}` : "";
  const picker = $("chat-picker");
  picker.replaceChildren(option(userId, TEXT.privateChat));
  for (const chat of state.chats) {
    const personaChat = persona && persona.chat_id === chat.id;
    if (chat.type !== "private" && (chat.members.includes(userId) || personaChat)) {
      picker.append(option(chat.id, chat.title || String(chat.id)));
    }
  }
  const wanted = persona && persona.chat_id;
  selectChat(state.chats.some((c) => c.id === wanted) ? wanted : userId);
}

/* ---------- messages ---------- */

async function selectChat(chatId) {
  if (state.source) state.source.close();
  state.chatId = chatId;
  $("chat-picker").value = String(chatId);
  const chat = state.chats.find((c) => c.id === chatId);
  $("chat-title").textContent = chat && chat.type !== "private" ? chat.title : titleFor(chatId);
  const list = $("messages");
  list.replaceChildren();
  delete list.dataset.loaded;
  await reload();
  if (chatId !== state.chatId) return;
  scrollToEnd();
  list.dataset.loaded = String(chatId);
  openStream(chatId);
}

function scrollToEnd() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function titleFor(chatId) {
  const persona = personaFor(chatId);
  if (persona) return persona.label;
  const user = state.users.find((u) => u.id === chatId);
  return user ? userName(user) : String(chatId);
}

async function reload() {
  const chatId = state.chatId;
  const [result, chat] = await Promise.all([
    api(`/chats/${chatId}/messages`), api(`/chats/${chatId}`),
  ]);
  if (chatId !== state.chatId) return;
  result.messages.forEach(upsert);
  showReplyKeyboard(chat.reply_keyboard);
}

function openStream(chatId) {
  const source = new EventSource(`${API}/chats/${chatId}/stream`);
  state.source = source;
  const status = $("stream-status");
  source.onopen = () => {
    status.textContent = TEXT.live;
    status.dataset.state = "live";
    status.classList.add("live");
    if (state.hadError) reload();
    state.hadError = false;
  };
  source.onerror = () => {
    status.textContent = TEXT.reconnecting;
    status.dataset.state = "reconnecting";
    status.classList.remove("live");
    state.hadError = true;
  };
  for (const type of ["message", "edit", "delete"]) {
    source.addEventListener(type, (event) => {
      const data = JSON.parse(event.data);
      upsert(data.message);
      showReplyKeyboard(data.reply_keyboard);
    });
  }
  source.addEventListener("callback_answer", (event) => {
    const record = JSON.parse(event.data).callback;
    answered(record);
  });
}

function upsert(message) {
  const list = $("messages");
  const id = String(message.message_id);
  const existing = list.querySelector(`[data-message-id="${id}"]`);
  if (existing && Number(existing.dataset.version) >= message.version) return;
  const bubble = renderBubble(message);
  if (existing) {
    existing.replaceWith(bubble);
    return;
  }
  const after = [...list.children].find((el) => Number(el.dataset.messageId) > message.message_id);
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.insertBefore(bubble, after || null);
  if (atBottom || message.sender === "user") scrollToEnd();
}

function renderBubble(message) {
  const el = document.createElement("div");
  el.className = `msg ${message.sender}${message.deleted ? " deleted" : ""}`;
  el.dataset.testid = "message";
  el.dataset.messageId = String(message.message_id);
  el.dataset.sender = message.sender;
  el.dataset.version = String(message.version);
  el.dataset.deleted = String(message.deleted);
  if (message.chat.type !== "private" && message.sender === "user") {
    el.append(block("div", "sender-name", userName(message.from)));
  }
  if (message.photo) el.append(photo(message));
  if (message.document) el.append(documentLink(message));
  if (message.text !== undefined) {
    el.append(formatted("text", message.text, message.entities));
  }
  if (message.caption) {
    el.append(formatted("caption", message.caption, message.caption_entities));
  }
  const keyboard = message.reply_markup && message.reply_markup.inline_keyboard;
  if (keyboard && !message.deleted) el.append(inlineKeyboard(message, keyboard));
  el.append(meta(message));
  return el;
}

function block(tag, className, text) {
  const el = document.createElement(tag);
  el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function photo(message) {
  const img = block("img", "photo");
  img.src = message.file_url;
  img.alt = TEXT.photo;
  img.addEventListener("load", () => {
    const list = $("messages");
    if (list.scrollHeight - list.scrollTop - list.clientHeight < img.height + 40) scrollToEnd();
  });
  img.dataset.testid = "message-photo";
  return img;
}

function documentLink(message) {
  const doc = message.document;
  const link = block("a", "document", `${doc.file_name} (${sizeText(doc.file_size)})`);
  link.href = `${message.file_url}?download=1`;
  link.download = doc.file_name;
  link.dataset.testid = "message-document";
  return link;
}

function sizeText(bytes) {
  const number = (n) => n.toLocaleString("vi-VN", { maximumFractionDigits: 1 });
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1048576) return `${number(bytes / 1024)} KB`;
  return `${number(bytes / 1048576)} MB`;
}

function meta(message) {
  const el = block("div", "meta");
  if (message.deleted) el.append(block("span", "flag", TEXT.deleted));
  else if (message.edit_date) el.append(block("span", "flag", TEXT.edited));
  const moment = new Date((message.edit_date || message.date) * 1000);
  const time = block("time", "time", CLOCK.format(moment));
  time.dateTime = moment.toISOString();
  time.title = `${DAY.format(moment)} ${CLOCK.format(moment)}`;
  time.dataset.testid = "message-time";
  el.append(time);
  return el;
}

/* ---------- formatted text from entities (never raw HTML) ---------- */

function formatted(kind, text, entities) {
  const el = block("div", kind);
  el.dataset.testid = `message-${kind}`;
  const sorted = [...(entities || [])].sort((a, b) => a.offset - b.offset || b.length - a.length);
  build(el, text, 0, text.length, sorted);
  return el;
}

function build(parent, text, start, end, entities) {
  let pos = start;
  let index = 0;
  while (index < entities.length) {
    const entity = entities[index];
    const entityEnd = Math.min(entity.offset + entity.length, end);
    const inner = [];
    index += 1;
    while (index < entities.length && entities[index].offset < entityEnd) {
      inner.push(entities[index]);
      index += 1;
    }
    if (entity.offset < pos) continue;
    if (entity.offset > pos) parent.append(text.slice(pos, entity.offset));
    const el = entityElement(entity);
    build(el.inner || el, text, entity.offset, entityEnd, inner);
    parent.append(el.outer || el);
    pos = entityEnd;
  }
  if (pos < end) parent.append(text.slice(pos, end));
}

function entityElement(entity) {
  if (TAGS[entity.type]) return document.createElement(TAGS[entity.type]);
  if (entity.type === "pre") {
    const pre = document.createElement("pre");
    const code = document.createElement("code");
    if (entity.language) code.dataset.language = entity.language;
    pre.append(code);
    return { outer: pre, inner: code };
  }
  if (entity.type === "text_link" && SAFE_URL.test(entity.url || "")) {
    const link = document.createElement("a");
    link.href = entity.url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    return link;
  }
  if (entity.type === "spoiler") {
    const span = block("span", "spoiler");
    span.addEventListener("click", () => span.classList.add("revealed"));
    return span;
  }
  return block("span", entity.type === "bot_command" ? "command" : "entity");
}

/* ---------- keyboards ---------- */

function inlineKeyboard(message, rows) {
  const el = block("div", "inline-keyboard");
  el.dataset.testid = "inline-keyboard";
  for (const row of rows) {
    const line = block("div", "kb-row");
    for (const button of row) line.append(inlineButton(message, button));
    el.append(line);
  }
  return el;
}

function inlineButton(message, button) {
  if (button.url && SAFE_URL.test(button.url)) {
    const link = block("a", "kb-button", button.text);
    link.href = button.url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.dataset.testid = "inline-url-button";
    return link;
  }
  const el = block("button", "kb-button", button.text);
  el.type = "button";
  el.dataset.testid = "inline-button";
  if (button.callback_data === undefined) {
    el.disabled = true;
    return el;
  }
  el.dataset.callbackData = button.callback_data;
  el.addEventListener("click", () => press(message.message_id, button.callback_data, el));
  return el;
}

function showReplyKeyboard(keyboard) {
  const box = $("reply-keyboard");
  box.replaceChildren();
  box.hidden = !keyboard;
  if (!keyboard) return;
  for (const row of keyboard.keyboard) {
    const line = block("div", "kb-row");
    for (const button of row) {
      const el = block("button", "", button.text);
      el.type = "button";
      el.dataset.testid = "reply-button";
      el.addEventListener("click", () => sendText(button.text));
      line.append(el);
    }
    box.append(line);
  }
}

/* ---------- user actions ---------- */

async function sendText(text) {
  if (state.zalo) return sendZaloText(text);
  if (!text.trim() || state.chatId === null) return;
  try {
    await postJson(`/chats/${state.chatId}/messages`, { text, from_id: state.userId });
  } catch (error) {
    toast(error.message, true);
  }
}

async function press(messageId, data, el) {
  el.classList.add("pending");
  try {
    const result = await postJson(`/chats/${state.chatId}/callbacks`, {
      message_id: messageId, data, from_id: state.userId,
    });
    state.pending.set(result.callback_query_id, el);
  } catch (error) {
    el.classList.remove("pending");
    toast(error.message, true);
  }
}

function answered(record) {
  const el = state.pending.get(record.id);
  if (el) el.classList.remove("pending");
  state.pending.delete(record.id);
  if (record.from_id === state.userId && record.text) toast(record.text, record.show_alert);
}

async function sendFile(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("from_id", String(state.userId));
  try {
    await api(`/chats/${state.chatId}/documents`, { method: "POST", body: form });
  } catch (error) {
    toast(error.message, true);
  }
}

async function createUser(name) {
  const user = await postJson("/users", { first_name: name });
  await loadPeople();
  fillPersonaPicker();
  selectUser(user.id);
}

let toastTimer = null;
function toast(text, alert = false) {
  const el = $("toast");
  el.textContent = text;
  el.classList.toggle("alert", Boolean(alert));
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, alert ? 6000 : 3000);
}

/* ---------- wiring ---------- */

function foldSide(folded) {
  document.body.classList.toggle("side-open", !folded);
  $("side-toggle").setAttribute("aria-expanded", String(!folded));
}

function bindEvents() {
  $("side-toggle").addEventListener("click", () => {
    foldSide(document.body.classList.contains("side-open"));
  });
  for (const id of ["persona-picker", "chat-picker"]) {
    $(id).addEventListener("change", () => { if (NARROW.matches) foldSide(true); });
  }
  $("persona-picker").addEventListener("change", (e) => pick(e.target.value));
  $("chat-picker").addEventListener("change", (e) => selectChat(Number(e.target.value)));
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("input");
    const text = input.value;
    input.value = "";
    sendText(text);
    input.focus();
  });
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("file-input").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) sendFile(file);
    event.target.value = "";
  });
  $("new-user").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("new-user-name").value.trim();
    if (!name) return;
    $("new-user-name").value = "";
    createUser(name).catch((error) => toast(error.message, true));
  });
}

async function init() {
  bindEvents();
  const info = await api("/info");
  const bot = info.bots[0];
  $("bot-info").textContent = `${TEXT.bot}: ${bot.first_name} (@${bot.username})`;
  await loadPeople();
  fillPersonaPicker();
  const zaloInfo = await zaloApi("/info").catch(() => null);
  if (zaloInfo) $("bot-info").textContent += `\n${TEXT.zaloBot}: ${zaloInfo.bot.account_name}`;
  const asked = new URLSearchParams(location.search).get("user") || "";
  const wanted = Number(asked);
  const picker = $("persona-picker");
  const first = picker.options.length && picker.options[0].value;
  if (asked.startsWith(ZALO_PREFIX) && zaloPersona(asked)) return pick(asked);
  const userId = state.users.some((u) => u.id === wanted) ? wanted : Number(first);
  if (userId) selectUser(userId);
  else if (first && first.startsWith(ZALO_PREFIX)) pick(first);
}

/* ---------- Zalo personas: plain text, no buttons, a typing box ---------- */

function pick(value) {
  if (value.startsWith(ZALO_PREFIX)) selectZalo(zaloPersona(value));
  else selectUser(Number(value));
}

function zaloPersona(value) {
  return state.zaloPersonas.find((p) => ZALO_PREFIX + p.user_id === value) || null;
}

function zaloPath(persona) {
  return persona.surface === "oa"
    ? `/oa/users/${persona.user_id}/messages`
    : `/chats/${persona.user_id}/messages`;
}

function leaveZalo() {
  state.zalo = null;
  state.zaloRun += 1;
  document.body.classList.remove("zalo");
  $("attach-button").hidden = false;
}

async function selectZalo(persona) {
  if (!persona) return;
  if (state.source) state.source.close();
  state.source = null;
  leaveZalo();
  state.zalo = persona;
  state.userId = null;
  state.chatId = null;
  const run = state.zaloRun;
  document.body.classList.add("zalo");
  $("persona-picker").value = ZALO_PREFIX + persona.user_id;
  $("persona-info").textContent = `${persona.role}\n${persona.unit}\n${TEXT.zalo}`;
  const label = persona.surface === "oa" ? TEXT.zaloOa : TEXT.zaloChat;
  $("chat-picker").replaceChildren(option(ZALO_PREFIX + persona.user_id, label));
  $("chat-title").textContent = `${persona.label} · ${TEXT.zalo}`;
  $("attach-button").hidden = true;
  showReplyKeyboard(null);
  const list = $("messages");
  list.replaceChildren();
  delete list.dataset.loaded;
  let since = 0;
  let loaded = false;
  const status = $("stream-status");
  while (run === state.zaloRun) {
    try {
      const wait = loaded ? ZALO_WAIT : 0;
      const result = await zaloApi(`${zaloPath(persona)}?since=${since}&wait=${wait}`);
      if (run !== state.zaloRun) return;
      since = result.version;
      result.messages.forEach(zaloUpsert);
      $("typing").hidden = !result.typing;
      status.textContent = TEXT.live;
      status.dataset.state = "live";
      status.classList.add("live");
      if (!loaded) {
        loaded = true;
        scrollToEnd();
        list.dataset.loaded = ZALO_PREFIX + persona.user_id;
      }
    } catch (error) {
      status.textContent = TEXT.reconnecting;
      status.dataset.state = "reconnecting";
      status.classList.remove("live");
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

function zaloUpsert(message) {
  const list = $("messages");
  if (list.querySelector(`[data-message-id="${message.message_id}"]`)) return;
  const el = document.createElement("div");
  el.className = `msg ${message.sender}`;
  el.dataset.testid = "message";
  el.dataset.messageId = message.message_id;
  el.dataset.sender = message.sender;
  el.dataset.channel = "zalo";
  if (message.photo) {
    const img = block("img", "photo");
    img.src = message.photo;
    img.alt = TEXT.photo;
    img.dataset.testid = "message-photo";
    el.append(img);
  }
  if (message.text !== undefined) el.append(plain("text", message.text));
  if (message.caption) el.append(plain("caption", message.caption));
  if (message.buttons && message.buttons.length) el.append(quickReplies(message.buttons));
  el.append(zaloMeta(message));
  list.append(el);
  scrollToEnd();
}

function plain(kind, text) {
  const el = block("div", kind, text);
  el.dataset.testid = `message-${kind}`;
  return el;
}

/* An Official Account's quick replies: pressing one sends its text, as in Zalo. */
function quickReplies(buttons) {
  const box = block("div", "quick-replies");
  for (const button of buttons) {
    const el = block("button", "quick-reply", button.title);
    el.type = "button";
    el.dataset.testid = "quick-reply";
    el.addEventListener("click", () => sendZaloText(button.text));
    box.append(el);
  }
  return box;
}

function zaloMeta(message) {
  const el = block("div", "meta");
  const moment = new Date(message.date);
  const time = block("time", "time", CLOCK.format(moment));
  time.dateTime = moment.toISOString();
  time.title = `${DAY.format(moment)} ${CLOCK.format(moment)}`;
  time.dataset.testid = "message-time";
  el.append(time);
  return el;
}

async function sendZaloText(text) {
  const persona = state.zalo;
  if (!text.trim() || !persona) return;
  try {
    await zaloApi(zaloPath(persona), {
      method: "POST",
      headers: { "Content-Type": "application/json; charset=utf-8" },
      body: JSON.stringify({ text }),
    });
  } catch (error) {
    toast(error.message, true);
  }
}

init().catch((error) => toast(`${TEXT.unavailable}: ${error.message}`, true));
