// Chat Completions: a message thread, parameters, and streamed deltas shown as they come.
import { call, stream } from "./api.js";
import { $, compact, guarded, h, numberOf } from "./dom.js";

let messages = [];

function bubble(role, text = "") {
  const body = h("div", { class: "text" }, text);
  const node = h("div", { class: `message ${role}` }, h("div", { class: "role" }, role), body);
  $("#chat-log").append(node);
  return { node, body };
}

function parseTools(text) {
  if (!text.trim()) return undefined;
  try {
    const tools = JSON.parse(text);
    return tools.map((tool) =>
      tool.type === "function" && !tool.function
        ? { type: "function", function: { ...tool, type: undefined } }
        : tool,
    );
  } catch (error) {
    throw new Error(`Tools are not valid JSON: ${error.message}`);
  }
}

function request(form) {
  const system = form.system.value.trim();
  return compact({
    model: form.model.value.trim(),
    messages: [...(system ? [{ role: "system", content: system }] : []), ...messages],
    temperature: numberOf(form.temperature),
    top_p: numberOf(form.top_p),
    max_completion_tokens: numberOf(form.max_completion_tokens),
    seed: numberOf(form.seed),
    tools: parseTools(form.tools.value),
  });
}

function usageLine(usage) {
  if (!usage) return null;
  return h(
    "div",
    { class: "usage" },
    `${usage.prompt_tokens} in · ${usage.completion_tokens} out · ${usage.total_tokens} tokens`,
  );
}

function showToolCalls(target, toolCalls) {
  for (const toolCall of toolCalls) {
    target.node.append(
      h("div", { class: "tool-call" }, `${toolCall.function.name}(${toolCall.function.arguments})`),
    );
  }
}

async function streamed(body, target) {
  let text = "";
  const toolCalls = [];
  let finish = null;
  let usage = null;
  target.node.classList.add("streaming");
  for await (const { data } of stream("chat/completions", {
    ...body,
    stream: true,
    stream_options: { include_usage: true },
  })) {
    if (data === "[DONE]") break;
    if (data.usage) usage = data.usage;
    const choice = data.choices && data.choices[0];
    if (!choice) continue;
    if (choice.delta.content) {
      text += choice.delta.content;
      target.body.textContent = text;
    }
    for (const part of choice.delta.tool_calls || []) {
      const call = (toolCalls[part.index] ||= { id: "", type: "function", function: { name: "", arguments: "" } });
      if (part.id) call.id = part.id;
      if (part.function && part.function.name) call.function.name += part.function.name;
      if (part.function && part.function.arguments) call.function.arguments += part.function.arguments;
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  target.node.classList.remove("streaming");
  showToolCalls(target, toolCalls);
  return { text, toolCalls, finish, usage };
}

async function whole(body, target) {
  const completion = await call("POST", "chat/completions", { json: body });
  const message = completion.choices[0].message;
  target.body.textContent = message.content || "";
  showToolCalls(target, message.tool_calls || []);
  return {
    text: message.content || "",
    toolCalls: message.tool_calls || [],
    finish: completion.choices[0].finish_reason,
    usage: completion.usage,
  };
}

export function initChat() {
  const form = $("#chat-form");
  const composer = $("#chat-send");
  const statusNode = $("#chat-status");
  $("#chat-clear").addEventListener("click", () => {
    messages = [];
    $("#chat-log").replaceChildren();
  });
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const prompt = composer.prompt.value.trim();
    if (!prompt) return;
    const button = composer.querySelector("button");
    guarded(
      statusNode,
      async () => {
        const body = request(form);
        messages.push({ role: "user", content: prompt });
        body.messages.push({ role: "user", content: prompt });
        bubble("user", prompt);
        composer.prompt.value = "";
        const target = bubble("assistant");
        try {
          const answer = form.stream.checked ? await streamed(body, target) : await whole(body, target);
          messages.push(
            compact({
              role: "assistant",
              content: answer.text || null,
              tool_calls: answer.toolCalls.length ? answer.toolCalls : undefined,
            }),
          );
          target.node.append(
            h("div", { class: "meta" }, `finish_reason: ${answer.finish}`),
            usageLine(answer.usage),
          );
        } catch (error) {
          target.node.classList.add("failed");
          messages.pop(); // the user turn goes too, so the thread can be retried
          throw error;
        }
      },
      button,
    );
  });
  // Ctrl/Cmd+Enter sends.
  composer.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) composer.requestSubmit();
  });
}
