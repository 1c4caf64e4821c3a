// Entry point: the key, the tabs, the list of models, and each view's wiring.
import { call, savedKey, saveKey } from "./api.js";
import { $, fill, h, status } from "./dom.js";
import { initChat } from "./chat.js";
import { initResponses } from "./responses.js";
import { initStored } from "./stored.js";
import { initFiles } from "./files.js";
import { initVectorStores } from "./vector_stores.js";
import { initAudio } from "./audio.js";
import { initImages } from "./images.js";

const views = new Map(); // name -> function run when the tab opens

function showView(name) {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.view === name);
  }
  for (const section of document.querySelectorAll(".view")) {
    section.classList.toggle("active", section.id === `view-${name}`);
  }
  const opened = views.get(name);
  if (opened) opened();
}

async function loadModels() {
  const keyStatus = $("#key-status");
  try {
    const models = await call("GET", "models");
    fill($("#model-ids"), models.data.map((model) => h("option", { value: model.id })));
    status(keyStatus, `${models.data.length} models`, "ok");
  } catch (error) {
    const missing = error.status === 401 && !savedKey();
    status(keyStatus, missing ? "Enter an API key." : error.message, "error");
  }
}

function init() {
  const keyInput = $("#api-key");
  keyInput.value = savedKey();
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveKey(keyInput.value.trim());
    loadModels();
  });
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => showView(button.dataset.view));
  }
  initChat();
  initResponses();
  views.set("stored", initStored());
  views.set("files", initFiles());
  views.set("vector-stores", initVectorStores());
  initAudio();
  initImages();
  loadModels();
  document.body.dataset.ready = "true";
}

init();
