// What every page needs to talk to the server, in one place: the request headers (with the key typed into
// the page's API key field) and an error response's message.

/** Headers for a request; `json` adds the JSON content type (leave it out for a request without a body). */
export function headers(json = true) {
  // A JSON content type on a request without a body (DELETE) is refused by the server.
  const h = json ? { "content-type": "application/json" } : {};
  const key = document.getElementById("api_key").value.trim();
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

/** The server's error message ({error: {message}}), or the HTTP status when the body has none. */
export async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error?.message ?? `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}
