// The demo page: reads the world from /demo/state after every change (server-sent events) and turns what the
// visitor does into what Slack would send the bot. Rendering of messages lives in blockkit.js.
"use strict";

const { el } = BlockKit;
const view = {
  data: null,
  user: new URLSearchParams(location.search).get("user") || "UALICE",
  channel: "CALERTS",
  home: false,
  seen: {},          // channel id -> root messages already seen, for unread badges
  rendered: "",      // what the conversation shows now, to redraw only when it changed
  loading: null,
  again: false,
};

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) console.warn(path, response.status, await response.text());
  return response;
}

// One read at a time; a change that arrives meanwhile triggers one more read afterwards.
async function load() {
  if (view.loading) { view.again = true; return view.loading; }
  view.loading = (async () => {
    do {
      view.again = false;
      const response = await fetch(`/demo/state?user=${encodeURIComponent(view.user)}`);
      if (response.ok) { view.data = await response.json(); render(); }
    } while (view.again);
  })();
  try { await view.loading; } finally { view.loading = null; }
}

function follow() {
  const events = new EventSource("/demo/events");
  events.onmessage = () => load();
  // EventSource reconnects by itself; reading once more on reconnection catches what was missed.
  events.onopen = () => load();
}

function me() { return view.data.people.find((p) => p.id === view.user); }
function channel(id) { return view.data.channels.find((c) => c.id === id); }

function render() {
  const data = view.data;
  const people = Object.fromEntries([...data.people, ...data.guests].map((p) => [p.id, p.name]));
  people[data.bot.id] = data.bot.name;
  BlockKit.setContext({
    people,
    channels: Object.fromEntries(data.channels.map((c) => [c.id, c.name])),
    me: view.user,
    onButton: clickButton,
  });
  document.body.dataset.version = data.version;
  renderPeople();
  renderSidebar();
  renderTitle();
  if (view.home) renderHome(); else renderConversation();
  renderPanel();
  Modal.show(data.modal, (action, values) => post("/demo/modal", { user: view.user, action, values }));
}

function renderPeople() {
  const select = document.getElementById("person");
  if (select.options.length) return;
  for (const person of view.data.people) {
    const option = el("option", "", `${person.name} — ${person.title}`);
    option.value = person.id;
    select.append(option);
  }
  select.value = view.user;
}

// The sidebar's and the panel's buttons are drawn once and then changed in place: a button replaced between
// the press and the release of a click (the page redraws after every change, many a second in an outage)
// would swallow that click.
function renderSidebar() {
  const list = document.getElementById("channel-list");
  for (const c of view.data.channels) {
    let item = list.querySelector(`[data-channel="${c.id}"]`);
    if (!item) {
      item = el("button", "nav");
      item.type = "button";
      item.dataset.channel = c.id;
      item.append(`# ${c.name}`, el("span", "badge"));
      item.addEventListener("click", () => openChannel(c.id));
      list.append(item);
    }
    const unread = c.messages.length - (view.seen[c.id] ?? 0);
    const active = !view.home && c.id === view.channel;
    item.classList.toggle("active", active);
    item.classList.toggle("unread", !active && unread > 0);
    const badge = item.querySelector(".badge");
    badge.textContent = String(unread);
    badge.hidden = active || unread <= 0;
  }
  document.getElementById("nav-home").classList.toggle("active", view.home);
}

function renderTitle() {
  const title = document.getElementById("title");
  title.replaceChildren();
  if (view.home) {
    title.append(el("strong", "", "partoo-retry"), el("span", "purpose", "Home"));
    return;
  }
  const c = channel(view.channel);
  title.append(el("strong", "", `# ${c.name}`), el("span", "purpose", c.purpose));
  const input = document.getElementById("composer-text");
  input.placeholder = `Message #${c.name} — try ${view.data.command} help`;
}

function renderConversation() {
  const c = channel(view.channel);
  view.seen[c.id] = c.messages.length;
  const key = JSON.stringify([view.user, c.id, c.messages]);
  if (key === view.rendered) return;
  view.rendered = key;
  const box = document.getElementById("conversation");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const scrollTop = box.scrollTop;
  // A menu open while the channel changes stays open, as in Slack (messages are drawn anew on every change).
  const openMenu = box.querySelector(".more-menu:not([hidden])");
  box.replaceChildren();
  if (!c.messages.length) box.append(el("p", "empty", "Nothing here yet."));
  for (const message of c.messages) box.append(renderMessage(message, c.id));
  if (openMenu) {
    const again = box.querySelector(`.more-menu[data-key="${CSS.escape(openMenu.dataset.key)}"]`);
    if (again) again.hidden = false;
  }
  box.scrollTop = atBottom ? box.scrollHeight : scrollTop;
  highlightLinked();
}

function renderMessage(message, channelId) {
  const node = el("div", "message");
  node.id = `msg-${message.ts}`;
  node.dataset.ts = message.ts;
  if (message.ephemeral) node.classList.add("ephemeral");
  const bot = message.user === view.data.bot.id;
  const person = [...view.data.people, ...view.data.guests].find((p) => p.id === message.user);
  const avatar = el("div", bot ? "avatar bot" : `avatar person-${message.user}`, bot ? "PR" : initials(person));
  const body = el("div", "message-body");
  const meta = el("div", "meta");
  meta.append(el("strong", "", bot ? view.data.bot.name : person ? person.name : message.user));
  if (bot) meta.append(el("span", "tag", "APP"));
  meta.append(el("time", "", clock(message.ts)));
  if (message.edited) meta.append(el("span", "edited", "(edited)"));
  if (message.ephemeral) meta.append(el("span", "only-you", "Only visible to you"));
  body.append(meta);
  body.append(message.blocks ? BlockKit.blocks(message.blocks) : textOnly(message.text));
  body.querySelectorAll(".bk-button, .bk-overflow-button").forEach((b) => { b.dataset.ts = message.ts; b.dataset.channel = channelId; });
  body.querySelectorAll(".bk-overflow").forEach((menu) => {
    menu.querySelector(".more-menu").dataset.key = `${message.ts}/${menu.querySelector("button").dataset.actionId}`;
  });
  if (message.replies && message.replies.length) {
    const thread = el("div", "thread");
    const n = message.replies.length;
    thread.append(el("div", "thread-title", `${n} ${n === 1 ? "reply" : "replies"}`));
    for (const reply of message.replies) thread.append(renderMessage(reply, channelId));
    body.append(thread);
  }
  node.append(avatar, body);
  // Slack offers shortcuts on every message anyone can see, the bot's own included.
  if (!message.ephemeral) {
    const more = Modal.moreActions(view.data.shortcuts, (shortcut) => post("/demo/shortcut", {
      user: view.user, channel: channelId, ts: message.ts, callback_id: shortcut.callback_id,
    }));
    more.querySelector(".more-menu").dataset.key = `${message.ts}/more`;
    node.append(more);
  }
  return node;
}

function textOnly(text) {
  const node = el("div", "bk-text");
  node.append(BlockKit.mrkdwn(text || ""));
  return node;
}

function initials(person) {
  return person ? person.name.split(" ").map((w) => w[0]).join("").slice(0, 2) : "?";
}

function clock(ts) {
  return new Date(Number(ts) * 1000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function renderHome() {
  const box = document.getElementById("home");
  const home = view.data.home;
  const key = JSON.stringify([view.user, home]);
  if (key === view.rendered) return;
  view.rendered = key;
  box.replaceChildren(home ? BlockKit.blocks(home.blocks || []) : el("p", "empty", "Opening…"));
}

function renderPanel() {
  const { controls, partoo } = view.data;
  const box = document.getElementById("controls");
  if (!box.children.length) {
    const groups = {};
    for (const control of controls) (groups[control.group] ||= []).push(control);
    for (const [group, items] of Object.entries(groups)) {
      const section = el("div", "control-group");
      section.append(el("h3", "", group));
      for (const control of items) {
        const button = el("button", "control", control.label);
        button.type = "button";
        button.title = control.help;
        button.dataset.control = control.id;
        button.addEventListener("click", () => post("/demo/partoo", { control: control.id }));
        section.append(button);
      }
      box.append(section);
    }
  }
  box.querySelectorAll(".control").forEach((b) => b.classList.toggle("chosen", b.dataset.control === partoo.next_retries));
  const status = document.getElementById("partoo-status");
  status.replaceChildren();
  const answers = Object.entries(partoo.answers).map(([code, n]) => `${n} × ${code}`).join(", ") || "none yet";
  status.append(el("div", "", `Retry calls answered: ${answers}`));
  status.append(el("div", "", `Conversations the bot checked: ${partoo.conversation_checks}`));
  status.append(el("div", "", `Webhooks delivered to the bot: ${partoo.webhooks_sent}`));
  if (partoo.rate_limited_for > 0) status.append(el("div", "warn", `Answering 429 for ${partoo.rate_limited_for} s more`));
  if (partoo.failed.length) {
    status.append(el("div", "", "Failed now (click to retry by command):"));
    const list = el("ul", "failed");
    for (const failure of partoo.failed) {
      const item = el("li", "", `${failure.id} · ${failure.consumer} · ${failure.partner}`);
      item.addEventListener("click", () => {
        const input = document.getElementById("composer-text");
        input.value = `${view.data.command} ${failure.id}`;
        if (view.home || view.channel === "CALERTS") openChannel("COPS");
        input.focus();
      });
      list.append(item);
    }
    status.append(list);
  }
}

// A button, or an option chosen in an overflow menu; the server reads the rest from the message it holds.
async function clickButton(element, block, target, option) {
  const action = { action_id: element.action_id, block_id: block.block_id };
  if (option) action.selected_option = option.value;
  if (element.confirm && !(await confirmed(element.confirm))) return;
  await post("/demo/click", { user: view.user, channel: target.dataset.channel, ts: target.dataset.ts, action });
}

function confirmed(confirm) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = confirm.title.text;
  document.getElementById("confirm-text").replaceChildren(
    confirm.text.type === "mrkdwn" ? BlockKit.mrkdwn(confirm.text.text) : confirm.text.text);
  document.getElementById("confirm-ok").textContent = confirm.confirm ? confirm.confirm.text : "Yes";
  document.getElementById("confirm-deny").textContent = confirm.deny ? confirm.deny.text : "Cancel";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true }));
}

// The main column shows either a channel (with the composer) or the app's Home tab.
function show(home) {
  view.home = home;
  view.rendered = "";
  document.getElementById("home").hidden = !home;
  document.getElementById("conversation").hidden = home;
  document.getElementById("composer").hidden = home;
  render();
}

function openChannel(id) {
  view.channel = id;
  show(false);
  const box = document.getElementById("conversation");
  box.scrollTop = box.scrollHeight;
}

async function openHome() {
  show(true);
  await post("/demo/home", { user: view.user });
}

// Permalinks the bot posts point at "#<channel>/<ts>": open the channel and show the message.
function followLink() {
  const [id] = location.hash.slice(1).split("/");
  if (view.data && channel(id)) openChannel(id);
}

function highlightLinked() {
  const [, ts] = location.hash.slice(1).split("/");
  const target = ts && document.getElementById(`msg-${ts}`);
  if (target) { target.classList.add("linked"); target.scrollIntoView({ block: "center" }); }
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("nav-home").addEventListener("click", openHome);
  document.getElementById("person").addEventListener("change", async (e) => {
    view.user = e.target.value;
    view.rendered = "";
    await load();
    if (view.home) await openHome();
  });
  document.getElementById("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = document.getElementById("composer-text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    await post("/demo/message", { user: view.user, channel: view.channel, text });
  });
  window.addEventListener("hashchange", followLink);
  await load();
  followLink();
  follow();
});
