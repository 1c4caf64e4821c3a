// Images: generate from a prompt and show the results.
import { call } from "./api.js";
import { $, fill, guarded, h, numberOf } from "./dom.js";

export function initImages() {
  const form = $("#image-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(
      $("#image-status"),
      async () => {
        const result = await call("POST", "images/generations", {
          json: { model: form.model.value.trim(), prompt: form.prompt.value, size: form.size.value, n: numberOf(form.n) || 1 },
        });
        const format = result.output_format || "png";
        fill(
          $("#image-results"),
          result.data.map((image) =>
            h(
              "figure",
              {},
              h("img", { src: image.b64_json ? `data:image/${format};base64,${image.b64_json}` : image.url, alt: form.prompt.value }),
              image.revised_prompt ? h("figcaption", {}, image.revised_prompt) : null,
            ),
          ),
        );
      },
      form.querySelector("button[type=submit]"),
    );
  });
}
