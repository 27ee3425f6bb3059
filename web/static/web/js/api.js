// The JSON API with the page's cookie: the CSRF header on writes, the
// contract's error shape turned into an ApiError.

export class ApiError extends Error {
  constructor(status, code, detail, retryAfter = 0) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from Retry-After (a rate limit)
  }
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "network_error", "No connection to the server");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const retryAfter = Number(response.headers.get("Retry-After")) || 0;
    throw new ApiError(response.status, error.code || "http_error", error.detail || `HTTP ${response.status}`, retryAfter);
  }
  return data;
}

// Every message of a conversation after `after`, page by page (oldest first).
export async function syncMessages(path, after = 0, limit = 500) {
  const messages = [];
  let position = after;
  for (let page = 0; page < 200; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const data = await api("GET", `${path}${sep}after=${position}&limit=${limit}`);
    messages.push(...data.messages);
    position = data.position;
    if (data.messages.length < limit) break;
  }
  return { messages, position };
}
