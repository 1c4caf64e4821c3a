// Cards for Responses items (output, input and conversation items), filled in as their
// stream events arrive and redrawn from the final item when it is done.
import { h, fill, jsonBlock } from "./dom.js";

/** The `include` values that show what hosted tools found (left out unless asked for). */
export const TOOL_RESULTS = [
  "web_search_call.action.sources",
  "file_search_call.results",
  "code_interpreter_call.outputs",
];

function partText(part) {
  if (part.type === "refusal") return `[refusal] ${part.refusal}`;
  if (part.type === "input_image") return `[image ${part.image_url || part.file_id || ""}]`;
  if (part.type === "input_file") return `[file ${part.filename || part.file_id || ""}]`;
  return part.text || "";
}

function annotations(content) {
  const notes = content.flatMap((part) => part.annotations || []);
  if (!notes.length) return null;
  return h(
    "ul",
    { class: "annotations" },
    notes.map((note) => {
      if (note.type === "url_citation") {
        return h("li", {}, h("a", { href: note.url, target: "_blank", rel: "noreferrer" }, note.title || note.url));
      }
      if (note.type === "file_citation") return h("li", {}, `file: ${note.filename || note.file_id}`);
      return h("li", {}, note.type);
    }),
  );
}

function imageOf(b64, format = "png") {
  return h("img", { class: "generated", src: `data:image/${format};base64,${b64}`, alt: "generated image" });
}

/** The body of a finished (or stored) item, by its type. */
function body(item, actions) {
  switch (item.type) {
    case "message": {
      const content = typeof item.content === "string" ? [{ type: "input_text", text: item.content }] : item.content || [];
      return [h("div", { class: "text" }, content.map(partText).join("\n")), annotations(content)];
    }
    case "function_call":
      return [
        h("div", { class: "call" }, `${item.name}(${item.arguments})`),
        h("div", { class: "meta" }, `call_id: ${item.call_id}`),
        actions && actions.functionOutput ? actions.functionOutput(item) : null,
      ];
    case "function_call_output":
      return h("div", { class: "call" }, `${item.call_id} → ${typeof item.output === "string" ? item.output : JSON.stringify(item.output)}`);
    case "reasoning": {
      const parts = [...(item.summary || []), ...(item.content || [])];
      return h("div", { class: "text thinking" }, parts.map((part) => part.text).join("\n"));
    }
    case "web_search_call": {
      const action = item.action || {};
      const what = action.query || action.url || action.pattern || "";
      return [
        h("div", { class: "call" }, `${action.type || "search"}: ${what}`),
        action.sources
          ? h("ul", {}, action.sources.map((source) => h("li", {}, source.url || source.name || source.type)))
          : null,
      ];
    }
    case "file_search_call":
      return [
        h("div", { class: "call" }, `queries: ${(item.queries || []).join(" · ")}`),
        item.results
          ? h("ul", {}, item.results.map((hit) => h("li", {}, `${hit.filename} (${Number(hit.score).toFixed(3)}): ${(hit.text || "").slice(0, 200)}`)))
          : null,
      ];
    case "mcp_list_tools":
      return h("div", { class: "call" }, `${item.server_label}: ${(item.tools || []).map((tool) => tool.name).join(", ")}`);
    case "mcp_call":
      return [
        h("div", { class: "call" }, `${item.server_label}.${item.name}(${item.arguments})`),
        item.output != null ? h("div", { class: "text" }, item.output) : null,
        item.error ? h("div", { class: "error-text" }, item.error) : null,
      ];
    case "mcp_approval_request":
      return [
        h("div", { class: "call" }, `${item.server_label}.${item.name}(${item.arguments}) needs approval`),
        actions && actions.approval ? actions.approval(item) : null,
      ];
    case "image_generation_call":
      return item.result ? imageOf(item.result, item.output_format || "png") : h("div", { class: "meta" }, "no image yet");
    case "code_interpreter_call":
      return [
        h("pre", { class: "code" }, item.code || ""),
        ...(item.outputs || []).map((out) =>
          out.type === "image" ? h("img", { class: "generated", src: out.url, alt: "output" }) : h("pre", { class: "output" }, out.logs),
        ),
      ];
    default:
      return null;
  }
}

// Items whose body arrives as deltas: their "added" form has nothing worth drawing.
const STREAMED_BODIES = new Set(["message", "function_call", "reasoning", "mcp_call", "code_interpreter_call"]);

/**
 * A card for one item. A live card (`live` true, from `output_item.added`) takes
 * `update(delta)` while it streams and `finish(item)` when it is done.
 */
export class ItemCard {
  constructor(item, actions, live = false) {
    this.actions = actions;
    this.streamed = "";
    this.state = h("span", { class: "state" });
    this.content = h("div", { class: "content" });
    this.node = h(
      "div",
      { class: `item ${item.type}`, dataset: { type: item.type } },
      h(
        "div",
        { class: "head" },
        h("span", { class: "kind" }, item.type),
        item.role ? h("span", { class: "role" }, item.role) : null,
        this.state,
      ),
      this.content,
    );
    this.finish(item, !live);
  }

  /** Appends streamed text (message text, call arguments, reasoning, code). */
  update(delta) {
    this.streamed += delta;
    let live = this.content.querySelector(".live");
    if (!live) {
      live = h("div", { class: "text live" });
      fill(this.content, live);
    }
    const item = this.item;
    const calling = item.type === "function_call" || item.type === "mcp_call";
    live.textContent = calling ? `${item.name}(${this.streamed}` : this.streamed;
  }

  setStatus(text) {
    this.state.textContent = text || "";
  }

  /** Shows a partial image of an image_generation_call while it is refined. */
  partialImage(b64, format) {
    fill(this.content, imageOf(b64, format));
  }

  finish(item, done = true) {
    this.item = item;
    this.setStatus(item.status);
    if (!done && STREAMED_BODIES.has(item.type)) fill(this.content);
    else fill(this.content, body(item, this.actions), done ? jsonBlock(item, "item") : null);
    this.node.classList.toggle("done", done);
  }
}

/** Cards for finished items (stored input, output or conversation items). */
export function itemCards(items, actions) {
  return items.map((item) => new ItemCard(item, actions).node);
}
