// Small DOM helpers. Text from the API is only ever set as text, never parsed as HTML.

/** An element: h("div", {class: "x", onclick: f}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

/** Replaces what `node` holds with `children`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** A collapsible JSON view. */
export function jsonBlock(value, summary = "JSON", open = false) {
  return h("details", { class: "json", open }, h("summary", {}, summary), h("pre", {}, pretty(value)));
}

/** Shows `error` in the view's status line (or clears it with null). */
export function status(node, message, kind = "info") {
  node.textContent = message ? String(message) : "";
  node.className = `status ${message ? kind : ""}`;
}

/** Runs `work`, showing its error in `statusNode`; disables `button` meanwhile. */
export async function guarded(statusNode, work, button) {
  if (button) button.disabled = true;
  status(statusNode, null);
  try {
    return await work();
  } catch (error) {
    status(statusNode, error.message || error, "error");
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** Reads an optional number from an <input>; undefined when empty. */
export function numberOf(input) {
  const text = input.value.trim();
  return text === "" ? undefined : Number(text);
}

/** Drops undefined fields, so the request carries only what the user set. */
export function compact(object) {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined));
}

export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}
