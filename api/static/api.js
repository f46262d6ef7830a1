// Calls to the JSON API with the session cookie; every POST carries the CSRF token.

let csrfToken = null; // read on the first POST: importing this module touches no document
const csrf = () => (csrfToken ??= document.querySelector('meta[name="csrf-token"]')?.content ?? "");

/** An API refusal, with a sentence a person can act on. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** "the goal is empty" → "The goal is empty." */
function sentence(text) {
  const trimmed = text.trim();
  if (!trimmed) return "";
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?…]$/.test(capital) ? capital : `${capital}.`;
}

/** What to tell the person about a refused request, from its status and the server's detail. */
export function explain(status, detail) {
  const said = typeof detail === "string" ? sentence(detail) : "";
  switch (status) {
    case 401:
      return "Your session has ended: reload the page and log in again.";
    case 403:
      return said ? `Refused. ${said}` : "Refused.";
    case 404:
      return said || "Not found.";
    case 413:
      return "That is too large for the server to accept.";
    case 429:
      return `Too busy right now. ${said || "Too many requests."} Try again in a moment.`;
    case 503:
      return `Mission Control cannot reach Prefect. ${said || "It is unavailable."} Try again shortly.`;
    default:
      return said || `The server answered ${status}.`;
  }
}

/** GET or POST `path`; resolves to the JSON body, rejects with an ApiError. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "The server cannot be reached: check the connection and try again.");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, explain(response.status, data?.detail));
  return data;
}
