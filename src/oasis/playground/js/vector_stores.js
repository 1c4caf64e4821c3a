// Vector stores: create from files, see their files and ingestion, search, delete.
import { call, listAll } from "./api.js";
import { $, fill, guarded, h, jsonBlock, status, when } from "./dom.js";

const statusNode = () => $("#stores-status");

async function refresh() {
  await guarded(statusNode(), async () => {
    const stores = await listAll("vector_stores", { limit: 100 });
    fill(
      $("#stores-list"),
      stores.map((store) =>
        h(
          "li",
          {},
          h("button", { type: "button", class: "link", onclick: () => open(store.id) }, store.name || store.id),
          h("span", { class: "meta" }, ` ${store.file_counts.completed}/${store.file_counts.total} files · ${store.status}`),
        ),
      ),
    );
  });
}

function searchForm(id) {
  const query = h("input", { placeholder: "search these files", class: "grow", required: true });
  const results = h("div", { class: "results" });
  const form = h(
    "form",
    {
      class: "row",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(statusNode(), async () => {
          const page = await call("POST", `vector_stores/${id}/search`, { json: { query: query.value } });
          fill(
            results,
            page.data.map((hit) =>
              h(
                "div",
                { class: "hit" },
                h("div", { class: "meta" }, `${hit.filename} · score ${Number(hit.score).toFixed(3)}`),
                h("div", { class: "text" }, hit.content.map((part) => part.text).join("\n")),
              ),
            ),
          );
          if (!page.data.length) status(statusNode(), "Nothing found.");
        });
      },
    },
    query,
    h("button", { type: "submit" }, "Search"),
  );
  return [form, results];
}

function addFileForm(id) {
  const fileId = h("input", { placeholder: "file-…", required: true });
  return h(
    "form",
    {
      class: "row",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(statusNode(), async () => {
          await call("POST", `vector_stores/${id}/files`, { json: { file_id: fileId.value.trim() } });
          await open(id);
        });
      },
    },
    fileId,
    h("button", { type: "submit" }, "Add file"),
  );
}

let shownStore = null; // the store whose detail is on screen

async function open(id) {
  shownStore = id;
  await guarded(statusNode(), async () => {
    const store = await call("GET", `vector_stores/${id}`);
    const files = await listAll(`vector_stores/${id}/files`, { limit: 100 });
    if (files.some((file) => file.status === "in_progress")) {
      // Ingestion runs in the background: look again until it is done.
      setTimeout(() => shownStore === id && open(id), 1000);
    }
    fill(
      $("#store-detail"),
      h("h2", {}, store.name || store.id),
      h("div", { class: "meta" }, `${store.id} · ${store.status} · ${store.usage_bytes} bytes · created ${when(store.created_at)}`),
      h(
        "ul",
        {},
        files.map((file) =>
          h(
            "li",
            {},
            `${file.id} · ${file.status}${file.last_error ? ` (${file.last_error.message})` : ""} `,
            h(
              "button",
              {
                type: "button",
                class: "danger",
                onclick: () =>
                  guarded(statusNode(), async () => {
                    await call("DELETE", `vector_stores/${id}/files/${file.id}`);
                    await open(id);
                  }),
              },
              "Remove",
            ),
          ),
        ),
      ),
      addFileForm(id),
      searchForm(id),
      jsonBlock(store, "vector store"),
      h(
        "button",
        {
          type: "button",
          class: "danger",
          onclick: () =>
            guarded(statusNode(), async () => {
              await call("DELETE", `vector_stores/${id}`);
              shownStore = null;
              fill($("#store-detail"));
              await refresh();
            }),
        },
        "Delete vector store",
      ),
    );
  });
}

/** Wires the view; returns what runs each time the tab opens. */
export function initVectorStores() {
  const form = $("#store-create");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(statusNode(), async () => {
      const fileIds = form.file_ids.value.split(",").map((id) => id.trim()).filter(Boolean);
      const store = await call("POST", "vector_stores", {
        json: { name: form.name.value.trim() || undefined, file_ids: fileIds.length ? fileIds : undefined },
      });
      form.reset();
      await refresh();
      await open(store.id);
    });
  });
  $("#stores-refresh").addEventListener("click", refresh);
  return refresh;
}
