// Elements built from text, never from HTML strings: what people write is shown as written.

export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) {
      node.setAttribute(key, "");
    } else {
      node.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let toastTimer = null;

/// A short message in the polite live region.
export function toast(message) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.classList.add("shown");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("shown"), 3500);
}

/// Asks for a confirmation in a modal dialog; resolves true when confirmed.
export function confirmDialog({ title, message, confirm, danger = true, typed = null }) {
  return new Promise((resolve) => {
    const input = typed ? h("input", { id: "confirm-typed", autocomplete: "off", "aria-describedby": "confirm-message" }) : null;
    const yes = h("button", { type: "submit", class: danger ? "danger" : "" }, confirm);
    const no = h("button", { type: "button", class: "quiet" }, "Cancel");
    const dialog = h("dialog", { "aria-labelledby": "confirm-title", "aria-describedby": "confirm-message" },
      h("form", { method: "dialog", class: "stack" },
        h("h2", { id: "confirm-title" }, title),
        h("p", { id: "confirm-message" }, message),
        input ? h("div", {}, h("label", { for: "confirm-typed" }, `Type ${typed} to confirm`), input) : null,
        h("div", { class: "row" }, yes, no)));
    if (input) {
      yes.disabled = true;
      input.addEventListener("input", () => { yes.disabled = input.value !== typed; });
    }
    let answered = false;
    const answer = (value) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    yes.addEventListener("click", (event) => { event.preventDefault(); answer(true); });
    no.addEventListener("click", () => answer(false));
    dialog.addEventListener("cancel", () => answer(false));
    document.body.append(dialog);
    dialog.showModal();
    (input || no).focus();
  });
}

/// Shows an API error's field messages beside their inputs (by `name`), or the message at
/// the top of the form.
export function showErrors(form, error) {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const summary = form.querySelector(".form-error");
  let placed = false;
  for (const detail of error.details || []) {
    const field = String(detail.field || "").split(/[.[]/)[0];
    const input = field && form.querySelector(`[name="${CSS.escape(field)}"]`);
    if (!input) continue;
    const id = `${input.id || field}-error`;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    input.after(h("p", { class: "field-error", id }, detail.message));
    if (!placed) input.focus();
    placed = true;
  }
  if (summary) {
    summary.textContent = placed ? "Please correct the fields marked below." : error.message;
    summary.hidden = false;
    if (!placed) summary.focus();
  }
}

export function clearErrors(form) {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const summary = form.querySelector(".form-error");
  if (summary) summary.hidden = true;
}

/// A field: label, input and optional hint, wired for assistive technology.
export function field({ name, label, type = "text", value = "", hint = null, required = false, autocomplete = null, textarea = false, rows = 3, attrs = {} }) {
  const id = `f-${name}`;
  const hintId = hint ? `${id}-hint` : null;
  const input = textarea
    ? h("textarea", { id, name, rows, required, "aria-describedby": hintId, ...attrs }, value)
    : h("input", { id, name, type, value, required, autocomplete, "aria-describedby": hintId, ...attrs });
  return h("div", {},
    h("label", { for: id }, label, hint ? h("span", { class: "hint", id: hintId }, ` ${hint}`) : null),
    input);
}

export function formatDate(iso, options = { dateStyle: "medium", timeStyle: "short" }) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, options);
}

/// The local calendar day of a time, as YYYY-MM-DD.
export function localDay(date) {
  const d = new Date(date);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}
