// Audio: record (or pick) a clip and transcribe it; speak text and play it.
import { call, fetchBlob } from "./api.js";
import { $, compact, guarded, numberOf, status } from "./dom.js";

let recorded = null; // the last recording, a Blob

function wireRecorder(button, player, statusNode) {
  let recorder = null;
  button.addEventListener("click", async () => {
    if (recorder) {
      recorder.stop();
      return;
    }
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      status(statusNode, "Recording needs a secure page (https or localhost) and a microphone.", "error");
      return;
    }
    await guarded(statusNode, async () => {
      const microphone = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks = [];
      recorder = new MediaRecorder(microphone);
      recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
      recorder.addEventListener("stop", () => {
        microphone.getTracks().forEach((track) => track.stop());
        recorded = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
        recorder = null;
        player.src = URL.createObjectURL(recorded);
        player.hidden = false;
        button.textContent = "● Record";
        status(statusNode, `Recorded ${(recorded.size / 1024).toFixed(0)} KiB.`, "ok");
      });
      recorder.start();
      button.textContent = "■ Stop";
      status(statusNode, "Recording…");
    });
  });
}

function extension(type) {
  if (type.includes("ogg")) return "ogg";
  if (type.includes("mp4")) return "m4a";
  return "webm";
}

export function initAudio() {
  const transcribe = $("#transcribe-form");
  const transcribeStatus = $("#transcribe-status");
  wireRecorder($("#record"), $("#recording"), transcribeStatus);
  transcribe.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(
      transcribeStatus,
      async () => {
        const picked = transcribe.file.files[0];
        const clip = picked || (recorded && new File([recorded], `recording.${extension(recorded.type)}`, { type: recorded.type }));
        if (!clip) throw new Error("Record a clip or choose an audio file first.");
        const body = new FormData();
        body.append("model", transcribe.model.value.trim());
        if (transcribe.language.value.trim()) body.append("language", transcribe.language.value.trim());
        body.append("file", clip);
        const result = await call("POST", "audio/transcriptions", { form: body });
        $("#transcript").textContent = result.text || "(no speech heard)";
      },
      transcribe.querySelector("button[type=submit]"),
    );
  });

  const speech = $("#speech-form");
  const player = $("#speech");
  speech.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(
      $("#speech-status"),
      async () => {
        const audio = await fetchBlob("POST", "audio/speech", {
          json: compact({
            model: speech.model.value.trim(),
            voice: speech.voice.value.trim(),
            input: speech.input.value,
            speed: numberOf(speech.speed),
            response_format: "mp3",
          }),
        });
        if (player.src) URL.revokeObjectURL(player.src);
        player.src = URL.createObjectURL(audio);
        player.hidden = false;
        await player.play().catch(() => {}); // autoplay may be refused; the controls remain
      },
      speech.querySelector("button[type=submit]"),
    );
  });
}
