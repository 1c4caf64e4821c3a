// Server-sent events from a fetch() body: the framing of the HTML standard (fields split
// on the first colon, one optional space dropped, events end at a blank line, CR, LF or
// CRLF line ends), read incrementally so each event is handed on as soon as it arrives.

/** Yields {event, data, id} for each event in the byte stream `body`. */
export async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "";
  let data = [];
  let id = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let lineEnd;
      while ((lineEnd = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A lone CR at the end of the buffer may be the first half of a CRLF.
        if (buffer[lineEnd] === "\r" && lineEnd === buffer.length - 1) break;
        const line = buffer.slice(0, lineEnd);
        const width = buffer.startsWith("\r\n", lineEnd) ? 2 : 1;
        buffer = buffer.slice(lineEnd + width);
        if (line === "") {
          if (data.length) yield { event: event || "message", data: data.join("\n"), id };
          event = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue; // a comment (keep-alive)
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
        else if (field === "id") id = text;
      }
    }
    if (data.length) yield { event: event || "message", data: data.join("\n"), id };
  } finally {
    reader.releaseLock();
  }
}
