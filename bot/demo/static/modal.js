// The message shortcut on the page: a message's "More actions" (⋯) menu, and the modal the bot opens with
// views.open. The modal is drawn from the view the bot sent; its checkboxes are sent back as Slack's view state.
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

  function checkboxes(block) {
    const element = block.element;
    const chosen = new Set((element.initial_options || []).map((o) => o.value));
    const group = el("fieldset", "bk-input");
    group.dataset.blockId = block.block_id;
    group.dataset.actionId = element.action_id;
    group.append(el("legend", "", block.label.text));
    for (const option of element.options) {
      const row = el("label", "bk-option");
      const box = el("input");
      box.type = "checkbox";
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

  function body(view) {
    const out = el("div", "bk-blocks");
    for (const block of view.blocks || []) {
      const drawn = block.type === "input" && block.element.type === "checkboxes" ? checkboxes(block) : BlockKit.blocks([block]);
      out.append(drawn);
      const error = (view.errors || {})[block.block_id];
      if (error) out.append(el("div", "modal-error", error));
    }
    if ((view.errors || {})[""]) out.append(el("div", "modal-error", view.errors[""]));
    return out;
  }

  // What Slack sends as view.state.values: the selected options of each checkbox group.
  function values() {
    const state = {};
    for (const group of document.querySelectorAll("#modal .bk-input")) {
      const selected = [...group.querySelectorAll("input:checked")].map((box) => box.option);
      state[group.dataset.blockId] = { [group.dataset.actionId]: { type: "checkboxes", selected_options: selected } };
    }
    return state;
  }

  // Shows `view` (or closes the modal when there is none); `send(action, values)` reaches the bot.
  function show(view, send) {
    const dialog = document.getElementById("modal");
    if (!view) { shownKey = ""; if (dialog.open) dialog.close(); return; }
    const key = JSON.stringify(view);
    if (key === shownKey && dialog.open) return;
    shownKey = key;
    document.getElementById("modal-title").textContent = view.title.text;
    document.getElementById("modal-body").replaceChildren(body(view));
    const submit = document.getElementById("modal-submit");
    submit.hidden = !view.submit;
    submit.textContent = view.submit ? view.submit.text : "";
    submit.onclick = () => send("submit", values());
    const close = document.getElementById("modal-close");
    close.textContent = view.close ? view.close.text : "Close";
    close.onclick = () => send("close", {});
    dialog.oncancel = (event) => { event.preventDefault(); send("close", {}); };
    if (!dialog.open) dialog.showModal();
  }

  return { moreActions, show };
})();
