// Stored responses and conversations: open one by id, see its items, delete it.
import { call, listAll } from "./api.js";
import { $, fill, guarded, h, jsonBlock, when } from "./dom.js";
import { forget, recall, remember } from "./history.js";
import { itemCards, TOOL_RESULTS } from "./items.js";

const statusNode = () => $("#stored-status");

function pickList(kind, selector, open) {
  fill(
    $(selector),
    recall(kind).map((entry) =>
      h(
        "li",
        {},
        h("button", { type: "button", class: "link", onclick: () => open(entry.id) }, entry.id),
        entry.preview ? h("span", { class: "meta" }, ` ${entry.preview}`) : null,
      ),
    ),
  );
}

function refreshLists() {
  pickList("responses", "#stored-responses", openResponse);
  pickList("conversations", "#stored-conversations", openConversation);
}

function deleteButton(label, work) {
  return h("button", { type: "button", class: "danger", onclick: () => guarded(statusNode(), work) }, label);
}

async function openResponse(id) {
  await guarded(statusNode(), async () => {
    const include = TOOL_RESULTS;
    const response = await call("GET", `responses/${id}`, { query: { include } });
    const inputs = await listAll(`responses/${id}/input_items`, { order: "asc", include });
    fill(
      $("#stored-detail"),
      h("h2", {}, response.id),
      h("div", { class: "meta" }, `${response.model} · ${response.status} · ${when(response.created_at)}`),
      response.previous_response_id
        ? h("button", { type: "button", class: "link", onclick: () => openResponse(response.previous_response_id) }, `← ${response.previous_response_id}`)
        : null,
      h("h3", {}, "Input items"),
      itemCards(inputs),
      h("h3", {}, "Output"),
      itemCards(response.output || []),
      jsonBlock(response, "response"),
      deleteButton("Delete response", async () => {
        await call("DELETE", `responses/${id}`);
        forget("responses", id);
        fill($("#stored-detail"));
        refreshLists();
      }),
    );
  });
}

async function openConversation(id) {
  await guarded(statusNode(), async () => {
    const conversation = await call("GET", `conversations/${id}`);
    const items = await listAll(`conversations/${id}/items`, { order: "asc", include: TOOL_RESULTS });
    remember("conversations", { id });
    refreshLists();
    fill(
      $("#stored-detail"),
      h("h2", {}, conversation.id),
      h("div", { class: "meta" }, `created ${when(conversation.created_at)} · ${items.length} items`),
      h("p", { class: "hint" }, "Put this id in the Responses tab's conversation field to add turns to it."),
      itemCards(items),
      jsonBlock(conversation, "conversation"),
      deleteButton("Delete conversation", async () => {
        await call("DELETE", `conversations/${id}`);
        forget("conversations", id);
        fill($("#stored-detail"));
        refreshLists();
      }),
    );
  });
}

/** Wires the view; returns what runs each time the tab opens. */
export function initStored() {
  $("#stored-response-form").addEventListener("submit", (event) => {
    event.preventDefault();
    openResponse(event.target.id.value.trim());
  });
  $("#stored-conversation-form").addEventListener("submit", (event) => {
    event.preventDefault();
    openConversation(event.target.id.value.trim());
  });
  $("#new-conversation-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(statusNode(), async () => {
      const conversation = await call("POST", "conversations", { json: {} });
      await openConversation(conversation.id);
    });
  });
  return refreshLists;
}
