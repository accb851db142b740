// Block Kit and mrkdwn, rendered the way Slack shows them (the parts the bot uses, and a few more).
// Everything is built as DOM nodes with textContent: no text from a message ever becomes HTML.
"use strict";

const BlockKit = (() => {
  const EMOJI = {
    arrows_counterclockwise: "🔄", ballot_box_with_check: "☑️", grey_question: "❔", hourglass: "⌛",
    hourglass_flowing_sand: "⏳", key: "🔑", lock: "🔒", no_entry: "⛔", no_entry_sign: "🚫",
    rotating_light: "🚨", warning: "⚠️", white_check_mark: "✅", x: "❌", tada: "🎉", eyes: "👀",
    heavy_check_mark: "✔️", information_source: "ℹ️", robot_face: "🤖", mag: "🔍", wrench: "🔧",
    bell: "🔔", no_bell: "🔕", octagonal_sign: "🛑", inbox_tray: "📥",
  };
  const INLINE = new RegExp([
    "(`[^`\\n]+`)",                                   // code
    "(<[^<>\\n]*>)",                                  // mention, channel, date, link
    "((?<![\\w*])\\*(?!\\s)[^*\\n]+?\\*(?![\\w*]))",  // *bold*
    "((?<![\\w_])_(?!\\s)[^_\\n]+?_(?![\\w_]))",      // _italic_
    "((?<![\\w~])~(?!\\s)[^~\\n]+?~(?![\\w~]))",      // ~strike~
    "(:[a-z0-9_+\\-]+:)",                             // :emoji:
  ].join("|"), "g");

  // Context the renderer needs: names of people and channels, who is looking, how to click.
  let ctx = { people: {}, channels: {}, me: null, onButton: null, onChannel: null };
  function setContext(next) { ctx = { ...ctx, ...next }; }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const decode = (text) => text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  const emojify = (text) => text.replace(/:([a-z0-9_+\-]+):/g, (all, name) => EMOJI[name] || all);

  function mrkdwn(text) {
    const out = document.createDocumentFragment();
    String(text).split("```").forEach((part, i) => {
      if (i % 2 === 1) out.append(el("pre", "mk-pre", decode(part.replace(/^\n/, ""))));
      else out.append(lines(part));
    });
    return out;
  }

  function lines(text) {
    const out = document.createDocumentFragment();
    let quote = null;
    let previous = null; // "text" or "quote"
    for (const row of text.split("\n")) {
      if (row.startsWith(">")) {
        if (!quote) { quote = el("blockquote", "mk-quote"); out.append(quote); } else quote.append(el("br"));
        quote.append(inline(row.replace(/^> ?/, "")));
        previous = "quote";
      } else {
        quote = null;
        if (previous === "text") out.append(el("br"));
        out.append(inline(row));
        previous = "text";
      }
    }
    return out;
  }

  function inline(text) {
    const out = document.createDocumentFragment();
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      const [token] = match;
      out.append(decode(text.slice(last, match.index)));
      const inner = token.slice(1, -1);
      if (match[1]) out.append(el("code", "mk-code", decode(inner)));
      else if (match[2]) out.append(special(inner));
      else if (match[3]) { const b = el("strong"); b.append(inline(inner)); out.append(b); }
      else if (match[4]) { const i = el("em"); i.append(inline(inner)); out.append(i); }
      else if (match[5]) { const s = el("s"); s.append(inline(inner)); out.append(s); }
      else out.append(EMOJI[inner] || token);
      last = match.index + token.length;
    }
    out.append(decode(text.slice(last)));
    return out;
  }

  // <@U123>, <#C123>, <!date^…|fallback>, <!subteam^S1>, <!here>, <url|label>
  function special(inner) {
    const bar = inner.indexOf("|");
    const target = bar < 0 ? inner : inner.slice(0, bar);
    const label = bar < 0 ? "" : decode(inner.slice(bar + 1));
    if (target.startsWith("@")) {
      const id = target.slice(1);
      const name = ctx.people[id] || label || id;
      return el("span", id === ctx.me ? "mention me" : "mention", `@${name}`);
    }
    if (target.startsWith("#")) {
      const id = target.slice(1);
      const link = el("a", "mention channel", `#${ctx.channels[id] || label || id}`);
      link.href = `#${id}`;
      return link;
    }
    if (target.startsWith("!date^")) return date(target.split("^"), label);
    if (target.startsWith("!subteam^")) return el("span", "mention", label || "@group");
    if (target.startsWith("!")) return el("span", "mention", `@${target.slice(1)}`);
    const url = decode(target);
    if (!/^(https?:|mailto:)/i.test(url)) return document.createTextNode(label || url);
    const link = el("a", "mk-link", label || url);
    link.href = url;
    if (new URL(url, location.href).origin !== location.origin) { link.target = "_blank"; link.rel = "noopener"; }
    return link;
  }

  function date([, seconds, format], fallback) {
    const when = new Date(Number(seconds) * 1000);
    if (Number.isNaN(when.getTime()) || !format) return document.createTextNode(fallback);
    const day = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
    const days = Math.round((day(when) - day(new Date())) / 86400000);
    const pretty = { 0: "today", "-1": "yesterday", 1: "tomorrow" }[days];
    const opts = (extra) => when.toLocaleDateString(undefined, extra);
    const parts = {
      date_num: when.toISOString().slice(0, 10),
      date: opts({ year: "numeric", month: "long", day: "numeric" }),
      date_short: opts({ year: "numeric", month: "short", day: "numeric" }),
      date_long: opts({ weekday: "long", year: "numeric", month: "long", day: "numeric" }),
      time: when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }),
      time_secs: when.toLocaleTimeString(),
      ago: ago(when),
    };
    parts.date_pretty = pretty || parts.date;
    parts.date_short_pretty = pretty || parts.date_short;
    parts.date_long_pretty = pretty || parts.date_long;
    const span = el("span", "mk-date", format.replace(/\{(\w+)\}/g, (all, key) => parts[key] ?? all));
    span.title = when.toString();
    return span;
  }

  function ago(when) {
    const seconds = Math.max(0, Math.round((Date.now() - when.getTime()) / 1000));
    if (seconds < 60) return "just now";
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    return `${Math.round(seconds / 3600)} h ago`;
  }

  function textObject(object) {
    if (!object) return document.createDocumentFragment();
    if (object.type === "mrkdwn") return mrkdwn(object.text || "");
    const plain = object.text || "";
    return document.createTextNode(object.emoji === false ? plain : emojify(plain));
  }

  function button(element, block) {
    const node = el("button", `bk-button ${element.style || ""}`.trim());
    node.type = "button";
    node.append(textObject(element.text));
    node.dataset.actionId = element.action_id || "";
    node.addEventListener("click", () => ctx.onButton && ctx.onButton(element, block, node));
    return node;
  }

  // An overflow menu (the alert's "Silence this …"): Slack's ⋯ button, and its options in a menu under it;
  // choosing one is the click (with the option), as in Slack.
  function overflow(item, block) {
    const box = el("span", "bk-overflow");
    const toggle = el("button", "bk-overflow-button", "⋯");
    toggle.type = "button";
    toggle.title = "More options";
    toggle.setAttribute("aria-label", "More options");
    toggle.dataset.actionId = item.action_id || "";
    const menu = el("div", "more-menu bk-overflow-menu");
    menu.hidden = true;
    for (const option of item.options || []) {
      const choice = el("button", "more-item");
      choice.type = "button";
      choice.append(textObject(option.text));
      choice.addEventListener("click", (event) => {
        event.stopPropagation();
        menu.hidden = true;
        if (ctx.onButton) ctx.onButton(item, block, toggle, option);
      });
      menu.append(choice);
    }
    toggle.addEventListener("click", (event) => {
      event.stopPropagation();
      document.querySelectorAll(".more-menu").forEach((other) => { if (other !== menu) other.hidden = true; });
      menu.hidden = !menu.hidden;
    });
    box.append(toggle, menu);
    return box;
  }

  function element(item, block) {
    if (item.type === "button") return button(item, block);
    if (item.type === "image") {
      const img = el("img", "bk-image");
      img.alt = item.alt_text || "";
      return img;
    }
    if (item.type === "mrkdwn" || item.type === "plain_text") {
      const span = el("span", "bk-context-text");
      span.append(textObject(item));
      return span;
    }
    if (item.type === "overflow") return overflow(item, block);
    return el("span", "bk-unsupported", `[${item.type}]`);
  }

  function block(item) {
    switch (item.type) {
      case "header": {
        const node = el("div", "bk-header");
        node.append(textObject(item.text));
        return node;
      }
      case "section": {
        const node = el("div", "bk-section");
        const body = el("div", "bk-section-body");
        if (item.text) { const t = el("div", "bk-text"); t.append(textObject(item.text)); body.append(t); }
        if (item.fields) {
          const fields = el("div", "bk-fields");
          for (const field of item.fields) { const f = el("div", "bk-field"); f.append(textObject(field)); fields.append(f); }
          body.append(fields);
        }
        node.append(body);
        if (item.accessory) { const a = el("div", "bk-accessory"); a.append(element(item.accessory, item)); node.append(a); }
        return node;
      }
      case "context": {
        const node = el("div", "bk-context");
        for (const part of item.elements || []) node.append(element(part, item));
        return node;
      }
      case "actions": {
        const node = el("div", "bk-actions");
        for (const part of item.elements || []) node.append(element(part, item));
        return node;
      }
      case "divider":
        return el("hr", "bk-divider");
      default:
        return el("div", "bk-unsupported", `[unsupported block: ${item.type}]`);
    }
  }

  function blocks(list) {
    const out = el("div", "bk-blocks");
    for (const item of list) out.append(block(item));
    return out;
  }

  return { setContext, mrkdwn, blocks, el };
})();
