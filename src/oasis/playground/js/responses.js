// The Responses API: a thread of turns, hosted and function tools, and each output item
// drawn as its stream events arrive.
import { call, listAll, stream } from "./api.js";
import { $, compact, guarded, h, numberOf, status } from "./dom.js";
import { remember } from "./history.js";
import { ItemCard, TOOL_RESULTS } from "./items.js";

const TERMINAL = new Set(["completed", "incomplete", "failed", "cancelled"]);

const TOOL_TEMPLATES = {
  function: async () => ({
    type: "function",
    name: "get_weather",
    description: "Current weather for a city.",
    parameters: {
      type: "object",
      properties: { city: { type: "string", maxLength: 40 } },
      required: ["city"],
      additionalProperties: false,
    },
    strict: true,
  }),
  web_search: async () => ({ type: "web_search" }),
  file_search: async () => ({
    type: "file_search",
    vector_store_ids: (await listAll("vector_stores")).map((store) => store.id),
  }),
  mcp: async () => ({
    type: "mcp",
    server_label: "local",
    server_url: "http://127.0.0.1:8001/mcp",
    require_approval: "never",
  }),
  code_interpreter: async () => ({ type: "code_interpreter", container: { type: "auto" } }),
  image_generation: async () => ({ type: "image_generation" }),
};

let lastResponseId = null;

function parseTools(text) {
  if (!text.trim()) return [];
  let tools;
  try {
    tools = JSON.parse(text);
  } catch (error) {
    throw new Error(`Tools are not valid JSON: ${error.message}`);
  }
  if (!Array.isArray(tools)) throw new Error("Tools must be a JSON array.");
  return tools;
}

/** tool_choice's options: the modes, then each tool by name (functions) or type. */
function refreshToolChoice(form) {
  const select = form.tool_choice;
  const chosen = select.value;
  let tools = [];
  try {
    tools = parseTools(form.tools.value);
  } catch {
    // keep the modes only until the JSON parses
  }
  for (const option of [...select.options]) if (option.dataset.tool) option.remove();
  for (const tool of tools) {
    for (const value of choicesOf(tool)) {
      select.append(h("option", { value, dataset: { tool: "1" } }, value.replace(":", " ")));
    }
  }
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
}

/** The tool_choice values one tool offers: a function by name, an MCP server (OpenAI's
 * MCP choice names its `server_label`) and each of its `allowed_tools`, else the type. */
function choicesOf(tool) {
  if (tool.type === "function") return [`function:${tool.name}`];
  if (tool.type !== "mcp") return [`type:${tool.type}`];
  const allowed = Array.isArray(tool.allowed_tools) ? tool.allowed_tools : tool.allowed_tools?.tool_names || [];
  return [`mcp:${tool.server_label}`, ...allowed.map((name) => `mcp:${tool.server_label}:${name}`)];
}

function toolChoice(value) {
  if (!value) return undefined;
  if (value.startsWith("function:")) return { type: "function", name: value.slice(9) };
  if (value.startsWith("type:")) return { type: value.slice(5) };
  if (value.startsWith("mcp:")) {
    const [label, name] = value.slice(4).split(":");
    return compact({ type: "mcp", server_label: label, name });
  }
  return value;
}

function requestBody(form, input, previous) {
  const tools = parseTools(form.tools.value);
  const conversation = form.conversation.value.trim();
  const chained = form.chain.checked && form.store.checked && !conversation;
  return compact({
    model: form.model.value.trim(),
    input,
    instructions: form.instructions.value.trim() || undefined,
    temperature: numberOf(form.temperature),
    max_output_tokens: numberOf(form.max_output_tokens),
    max_tool_calls: numberOf(form.max_tool_calls),
    tools: tools.length ? tools : undefined,
    tool_choice: toolChoice(form.tool_choice.value),
    store: form.store.checked,
    include: form.tool_results.checked ? TOOL_RESULTS : undefined,
    background: form.background.checked || undefined,
    conversation: conversation || undefined,
    // A conversation carries the history itself (the API refuses both).
    previous_response_id: conversation
      ? undefined
      : previous || (chained && lastResponseId ? lastResponseId : undefined),
  });
}

/** One turn's box in the log: its input, its item cards, its final line. */
class Turn {
  constructor(label, actions) {
    this.actions = actions(this);
    this.responseId = null;
    this.cards = new Map(); // output_index -> ItemCard
    this.items = h("div", { class: "items" });
    this.footer = h("div", { class: "meta" });
    this.node = h("div", { class: "turn" }, h("div", { class: "message user" }, h("div", { class: "role" }, "input"), h("div", { class: "text" }, label)), this.items, this.footer);
    $("#responses-log").append(this.node);
    this.node.scrollIntoView({ block: "end" });
  }

  card(index, item) {
    let card = this.cards.get(index);
    if (!card) {
      card = new ItemCard(item, this.actions, true);
      this.cards.set(index, card);
      this.items.append(card.node);
    }
    return card;
  }

  /** Draws one stream event. */
  event(data) {
    const type = data.type || "";
    if (data.response) this.response(data.response, type);
    if (type === "response.output_item.added") this.card(data.output_index, data.item);
    else if (type === "response.output_item.done") this.card(data.output_index, data.item).finish(data.item);
    else if (type.endsWith(".delta") && data.output_index !== undefined && typeof data.delta === "string") {
      this.cards.get(data.output_index)?.update(data.delta);
    } else if (type === "response.image_generation_call.partial_image") {
      this.cards.get(data.output_index)?.partialImage(data.partial_image_b64, data.output_format);
    } else if (/^response\.\w+_call\.\w+$/.test(type) && data.output_index !== undefined) {
      this.cards.get(data.output_index)?.setStatus(type.split(".").pop());
    }
  }

  /** The response object as it stands (created, in progress, or final). */
  response(response, type = "") {
    this.responseId = response.id;
    this.footer.textContent = `${response.id} · ${response.status}${type ? ` (${type})` : ""}`;
    if (!TERMINAL.has(response.status)) return;
    (response.output || []).forEach((item, index) => {
      const card = this.card(index, item);
      if (!card.node.classList.contains("done")) card.finish(item);
    });
    const usage = response.usage;
    const reason = response.incomplete_details ? ` · ${response.incomplete_details.reason}` : "";
    const failure = response.error ? ` · ${response.error.message}` : "";
    this.footer.textContent = `${response.id} · ${response.status}${reason}${failure}` +
      (usage ? ` · ${usage.input_tokens} in · ${usage.output_tokens} out` : "");
  }
}

export function initResponses() {
  const form = $("#responses-form");
  const composer = $("#responses-send");
  const statusNode = $("#responses-status");
  const button = composer.querySelector("button");

  async function run(input, label, previous) {
    const body = requestBody(form, input, previous);
    const turn = new Turn(label, actions);
    let final = null;
    if (form.stream.checked) {
      for await (const { data } of stream("responses", { ...body, stream: true })) {
        if (data === "[DONE]") break;
        turn.event(data);
        if (data.response) final = data.response;
      }
    } else {
      final = await call("POST", "responses", { json: body });
      turn.response(final);
      while (!TERMINAL.has(final.status)) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        final = await call("GET", `responses/${final.id}`);
        turn.response(final);
      }
    }
    if (final) {
      if (body.store) {
        lastResponseId = final.id;
        const text = typeof input === "string" ? input : label;
        remember("responses", { id: final.id, model: final.model, preview: text.slice(0, 60) });
      }
      if (final.conversation) remember("conversations", { id: final.conversation.id });
    }
  }

  function send(input, label, previous) {
    return guarded(statusNode, () => run(input, label, previous), button);
  }

  // A call's answer continues the response that made the call (which is not always the
  // last one: a later turn may have started meanwhile).
  const actions = (turn) => ({
    functionOutput(item) {
      const output = h("input", { placeholder: '{"temp_c": 18}', class: "grow" });
      return h(
        "form",
        {
          class: "row reply",
          onsubmit: (event) => {
            event.preventDefault();
            const result = output.value || "{}";
            send([{ type: "function_call_output", call_id: item.call_id, output: result }], `${item.name} → ${result}`, turn.responseId);
          },
        },
        output,
        h("button", { type: "submit" }, "Send output"),
      );
    },
    approval(item) {
      const answer = (approve) => () =>
        send([{ type: "mcp_approval_response", approval_request_id: item.id, approve }], `${approve ? "approve" : "deny"} ${item.name}`, turn.responseId);
      return h("div", { class: "row" }, h("button", { type: "button", onclick: answer(true) }, "Approve"), h("button", { type: "button", onclick: answer(false) }, "Deny"));
    },
  });

  for (const add of form.querySelectorAll("[data-tool]")) {
    add.addEventListener("click", () =>
      guarded(statusNode, async () => {
        const tools = parseTools(form.tools.value);
        tools.push(await TOOL_TEMPLATES[add.dataset.tool]());
        form.tools.value = JSON.stringify(tools, null, 2);
        refreshToolChoice(form);
      }),
    );
  }
  form.tools.addEventListener("input", () => refreshToolChoice(form));
  $("#responses-new-conversation").addEventListener("click", () =>
    guarded(statusNode, async () => {
      const conversation = await call("POST", "conversations", { json: {} });
      form.conversation.value = conversation.id;
      remember("conversations", { id: conversation.id });
    }),
  );
  $("#responses-clear").addEventListener("click", () => {
    lastResponseId = null;
    $("#responses-log").replaceChildren();
    status(statusNode, null);
  });
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = composer.input.value.trim();
    if (!text) return;
    composer.input.value = "";
    send(text, text);
  });
  composer.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) composer.requestSubmit();
  });
}
