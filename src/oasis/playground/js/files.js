// Files: upload, list, download, delete.
import { call, fetchBlob, listAll } from "./api.js";
import { $, fill, guarded, h, status, when } from "./dom.js";

const statusNode = () => $("#files-status");

function download(file) {
  return guarded(statusNode(), async () => {
    const blob = await fetchBlob("GET", `files/${file.id}/content`);
    const link = h("a", { href: URL.createObjectURL(blob), download: file.filename });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  });
}

async function refresh() {
  await guarded(statusNode(), async () => {
    const files = await listAll("files", { limit: 100 });
    fill(
      $("#files-table tbody"),
      files.map((file) =>
        h(
          "tr",
          { dataset: { id: file.id } },
          h("td", { class: "mono" }, file.id),
          h("td", {}, file.filename),
          h("td", {}, file.purpose),
          h("td", {}, file.bytes),
          h("td", {}, when(file.created_at)),
          h(
            "td",
            {},
            h("button", { type: "button", onclick: () => download(file) }, "Download"),
            h(
              "button",
              {
                type: "button",
                class: "danger",
                onclick: () =>
                  guarded(statusNode(), async () => {
                    await call("DELETE", `files/${file.id}`);
                    await refresh();
                  }),
              },
              "Delete",
            ),
          ),
        ),
      ),
    );
    if (!files.length) status(statusNode(), "No files yet.");
  });
}

/** Wires the view; returns what runs each time the tab opens. */
export function initFiles() {
  const form = $("#file-upload");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(
      statusNode(),
      async () => {
        const body = new FormData();
        body.append("purpose", form.purpose.value);
        body.append("file", form.file.files[0]);
        const file = await call("POST", "files", { form: body });
        form.reset();
        await refresh();
        status(statusNode(), `Uploaded ${file.filename} as ${file.id}.`, "ok");
      },
      form.querySelector("button[type=submit]"),
    );
  });
  $("#files-refresh").addEventListener("click", refresh);
  return refresh;
}
