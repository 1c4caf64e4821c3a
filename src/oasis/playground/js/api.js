// The one client the page uses: the key from localStorage, the OpenAI error envelope turned
// into an Error whose message names the param, and streams read as server-sent events.
import { readEvents } from "./sse.js";

const KEY = "oasis.playground.key";

/** The API's base URL: `v1/` beside the folder the page is served from. */
export const API_BASE = new URL("../v1/", document.baseURI);

export function savedKey() {
  return localStorage.getItem(KEY) || "";
}

export function saveKey(key) {
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

/** An error answer from the API (its envelope kept as `error`). */
export class ApiError extends Error {
  constructor(status, error) {
    const param = error && error.param ? ` (param: ${error.param})` : "";
    super(`${status}: ${(error && error.message) || "request failed"}${param}`);
    this.status = status;
    this.error = error;
  }
}

function url(path, query) {
  const target = new URL(path.replace(/^\//, ""), API_BASE);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of [].concat(value)) target.searchParams.append(name, one);
  }
  return target;
}

async function send(method, path, { json, form, query, signal } = {}) {
  const headers = {};
  const key = savedKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser writes the multipart boundary
  }
  const response = await fetch(url(path, query), { method, headers, body, signal });
  if (!response.ok) {
    let error = null;
    try {
      error = (await response.json()).error;
    } catch {
      error = { message: response.statusText };
    }
    throw new ApiError(response.status, error);
  }
  return response;
}

/** GET/POST/DELETE returning the parsed JSON body. */
export async function call(method, path, options) {
  return (await send(method, path, options)).json();
}

/** A request whose answer is bytes (speech, file content): a Blob. */
export async function fetchBlob(method, path, options) {
  return (await send(method, path, options)).blob();
}

/**
 * POSTs `json` and yields each server-sent event parsed: {event, data} where data is the
 * decoded JSON (or the raw text, such as Chat's `[DONE]`). An `error` event is thrown.
 */
export async function* stream(path, json, signal) {
  const response = await send("POST", path, { json, signal });
  for await (const message of readEvents(response.body)) {
    let data = message.data;
    if (data !== "[DONE]") {
      try {
        data = JSON.parse(data);
      } catch {
        // not JSON: handed on as text
      }
    }
    if (message.event === "error" || (data && (data.type === "error" || data.error))) {
      throw new ApiError("stream", (data && data.error) || data);
    }
    yield { event: message.event, data };
  }
}

/** Every page of a cursor-paginated list (`after` = the last id). */
export async function listAll(path, query = {}) {
  const items = [];
  let after;
  for (;;) {
    const page = await call("GET", path, { query: { ...query, after } });
    items.push(...page.data);
    if (!page.has_more || !page.data.length) return items;
    after = page.last_id || page.data[page.data.length - 1].id;
  }
}
