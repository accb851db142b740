// The message shortcut on the page: a message's "More actions" (⋯) menu; and the modals the bot opens with
// views.open (the shortcut's, the silence's), drawn from the view the bot sent, their inputs sent back as Slack's
// view state.
"use strict";

const Modal = (() => {
  const { el } = BlockKit;
  let shownKey = "";   // the view on screen, so that a state update does not undo the visitor's choices

  // The ⋯ button of one message, and its menu of the app's message shortcuts.
  function moreActions(shortcuts, onChoose) {
    const box = el("div", "more");
    const button = el("button", "more-button", "⋯");
    button.type = "button";
    button.title = "More actions";
    button.setAttribute("aria-label", "More actions");
    const menu = el("div", "more-menu");
    menu.hidden = true;
    for (const shortcut of shortcuts) {
      const item = el("button", "more-item");
      item.type = "button";
      item.append(el("span", "app-icon", "PR"), ` ${shortcut.name}`);
      item.addEventListener("click", () => { menu.hidden = true; onChoose(shortcut); });
      menu.append(item);
    }
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      document.querySelectorAll(".more-menu").forEach((other) => { if (other !== menu) other.hidden = true; });
      menu.hidden = !menu.hidden;
    });
    box.append(button, menu);
    return box;
  }
  document.addEventListener("click", () => document.querySelectorAll(".more-menu").forEach((m) => { m.hidden = true; }));

  // An input block's frame: its label (with "(optional)" as Slack writes it) around the element.
  function inputFrame(block) {
    const group = el("fieldset", "bk-input");
    group.dataset.blockId = block.block_id;
    group.dataset.actionId = block.element.action_id;
    group.dataset.type = block.element.type;
    group.dataset.optional = block.optional ? "true" : "false";
    const legend = el("legend", "", block.label.text);
    if (block.optional) legend.append(el("span", "optional", " (optional)"));
    group.append(legend);
    return group;
  }

  function options(block, kind, chosen) {
    const group = inputFrame(block);
    for (const option of block.element.options) {
      const row = el("label", "bk-option");
      const box = el("input");
      box.type = kind;
      box.name = block.block_id;
      box.value = option.value;
      box.checked = chosen.has(option.value);
      box.option = option;
      const text = el("span", "bk-option-text");
      text.append(option.text.type === "mrkdwn" ? BlockKit.mrkdwn(option.text.text) : option.text.text);
      if (option.description) text.append(el("small", "", option.description.text));
      row.append(box, text);
      group.append(row);
    }
    return group;
  }

  function field(block, type) {
    const group = inputFrame(block);
    const element = block.element;
    const input = el("input");
    input.type = type;
    input.setAttribute("aria-label", block.label.text);
    if (element.placeholder) input.placeholder = element.placeholder.text;
    if (element.max_length) input.maxLength = element.max_length;
    if (element.initial_value) input.value = element.initial_value;
    if (element.initial_date_time) input.value = localTime(element.initial_date_time);
    group.append(input);
    return group;
  }

  // The input elements the bot's modals use; anything else is shown as unsupported, never silently dropped.
  function input(block) {
    const element = block.element;
    switch (element.type) {
      case "checkboxes":
        return options(block, "checkbox", new Set((element.initial_options || []).map((o) => o.value)));
      case "radio_buttons":
        return options(block, "radio", new Set(element.initial_option ? [element.initial_option.value] : []));
      case "plain_text_input":
        return field(block, "text");
      case "datetimepicker":
        return field(block, "datetime-local");
      default:
        return el("div", "bk-unsupported", `[unsupported input: ${element.type}]`);
    }
  }

  const localTime = (seconds) => {
    const when = new Date(seconds * 1000);
    return new Date(when.getTime() - when.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  };

  function body(view) {
    const out = el("div", "bk-blocks");
    for (const block of view.blocks || []) {
      out.append(block.type === "input" ? input(block) : BlockKit.blocks([block]));
      const error = (view.errors || {})[block.block_id];
      if (error) out.append(el("div", "modal-error", error));
    }
    if ((view.errors || {})[""]) out.append(el("div", "modal-error", view.errors[""]));
    return out;
  }

  // What Slack sends as view.state.values: each input's value, in the shape of its element's type.
  function stateOf(group) {
    const type = group.dataset.type;
    if (type === "checkboxes") {
      return { type, selected_options: [...group.querySelectorAll("input:checked")].map((box) => box.option) };
    }
    if (type === "radio_buttons") {
      const chosen = group.querySelector("input:checked");
      return { type, selected_option: chosen ? chosen.option : null };
    }
    const text = group.querySelector("input").value;
    if (type === "datetimepicker") {
      return { type, selected_date_time: text ? Math.floor(new Date(text).getTime() / 1000) : null };
    }
    return { type, value: text || null };
  }

  function inputs() {
    const state = {};
    for (const group of document.querySelectorAll("#modal .bk-input")) state[group.dataset.blockId] = stateOf(group);
    return state;
  }

  function restore(group, state) {
    if (state.selected_options || "selected_option" in state) {
      const chosen = new Set((state.selected_options || [state.selected_option]).filter(Boolean).map((o) => o.value));
      group.querySelectorAll("input").forEach((box) => { box.checked = chosen.has(box.value); });
      return;
    }
    const input = group.querySelector("input");
    if ("selected_date_time" in state) input.value = state.selected_date_time ? localTime(state.selected_date_time) : "";
    else input.value = state.value || "";
  }

  const empty = (state) =>
    (state.selected_options && !state.selected_options.length) || state.selected_option === null ||
    state.selected_date_time === null || state.value === null;

  // Slack checks required inputs itself: an empty one is marked, and nothing is sent to the app.
  function values() {
    const state = {};
    let missing = false;
    for (const group of document.querySelectorAll("#modal .bk-input")) {
      const value = stateOf(group);
      group.querySelector(".modal-error.required")?.remove();
      if (group.dataset.optional !== "true" && empty(value)) {
        group.append(el("div", "modal-error required", "Please complete this required field."));
        missing = true;
      }
      state[group.dataset.blockId] = { [group.dataset.actionId]: value };
    }
    return missing ? null : state;
  }

  // Shows `view` (or closes the modal when there is none); `send(action, values)` reaches the bot.
  function show(view, send) {
    const dialog = document.getElementById("modal");
    if (!view) { shownKey = ""; if (dialog.open) dialog.close(); return; }
    const key = JSON.stringify(view);
    if (key === shownKey && dialog.open) return;
    shownKey = key;
    // Redrawn while open (errors on a field, or an update): Slack keeps what was typed and chosen in each input
    // whose block_id stays, as here.
    const kept = dialog.open ? inputs() : {};
    document.getElementById("modal-title").textContent = view.title.text;
    document.getElementById("modal-body").replaceChildren(body(view));
    for (const group of document.querySelectorAll("#modal .bk-input")) {
      const before = kept[group.dataset.blockId];
      if (before && before.type === group.dataset.type) restore(group, before);
    }
    const submit = document.getElementById("modal-submit");
    submit.hidden = !view.submit;
    submit.textContent = view.submit ? view.submit.text : "";
    submit.onclick = () => { const chosen = values(); if (chosen) send("submit", chosen); };
    const close = document.getElementById("modal-close");
    close.textContent = view.close ? view.close.text : "Close";
    close.onclick = () => send("close", {});
    dialog.oncancel = (event) => { event.preventDefault(); send("close", {}); };
    if (!dialog.open) dialog.showModal();
  }

  return { moreActions, show };
})();
