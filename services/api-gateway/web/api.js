// The JSON API, called with the sign-in's cookies: the access token rides in an HttpOnly
// cookie the script never sees; every request that changes something carries the CSRF
// token (a cookie the script can read) in X-CSRF-Token, which a page of another site can
// neither read nor send. An expired access token is renewed once with the refresh cookie.

const CSRF_COOKIE = "__Host-metachat-csrf";

export class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error;
    super(error ? error.message : `the server answered ${status}`);
    this.status = status;
    this.code = error ? error.code : null;
    this.details = (error && error.details) || [];
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return null;
}

export class Api {
  constructor() {
    this.userId = null;
    // The consistency token of the last write: reads pass it to see that write.
    this.consistency = null;
    this.onSignedOut = () => {};
    this.refreshing = null;
  }

  async request(method, path, { body, headers = {}, retry = true } = {}) {
    const sent = { Accept: "application/json", ...headers };
    if (body !== undefined) sent["Content-Type"] = "application/json";
    if (method !== "GET") {
      const token = cookie(CSRF_COOKIE);
      if (token) sent["X-CSRF-Token"] = token;
    }
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, { error: { message: "MetaChat cannot be reached: check the connection and try again" } });
    }
    if (response.status === 401 && retry && !path.startsWith("/auth/session")) {
      const renewed = await this.refresh();
      if (renewed === true) return this.request(method, path, { body, headers, retry: false });
      if (renewed === false) this.onSignedOut();
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = text; }
    }
    if (!response.ok) throw new ApiError(response.status, data);
    // Diary writes' tokens only: the diary's lists and analytics wait on them (a user write's
    // token names a write the diary service does not know).
    const token = response.headers.get("X-Consistency-Token");
    if (token && method !== "GET" && path.startsWith("/diary/")) this.consistency = token;
    return { data, headers: response.headers, status: response.status };
  }

  get(path, options) { return this.request("GET", path, options); }
  post(path, body, options = {}) { return this.request("POST", path, { ...options, body }); }
  put(path, body, options = {}) { return this.request("PUT", path, { ...options, body }); }
  delete(path, options) { return this.request("DELETE", path, options); }

  /// Headers that make a read wait for this browser's last write.
  fresh() {
    return this.consistency ? { "X-Consistency-Token": this.consistency } : {};
  }

  /// Renews the access cookie from the refresh cookie: true when renewed, false when the
  /// sign-in is over, null when it could not be told (the server busy or unreachable). One
  /// renewal at a time across this browser's tabs: a refresh token spent twice ends the
  /// sign-in, so a tab that waited first checks whether another one renewed already.
  refresh() {
    if (!cookie(CSRF_COOKIE)) return Promise.resolve(false);
    if (!this.refreshing) {
      const renew = async () => {
        const check = await fetch("/auth/session", { credentials: "same-origin", cache: "no-store" }).catch(() => null);
        if (check && check.ok) return true;
        try {
          await this.request("POST", "/auth/session/refresh", { retry: false });
          return true;
        } catch (error) {
          return error.status === 401 || error.status === 403 ? false : null;
        }
      };
      const locked = navigator.locks ? navigator.locks.request("metachat-refresh", renew) : renew();
      this.refreshing = locked.finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  async whoAmI() {
    try {
      const { data } = await this.get("/auth/session", { retry: false });
      this.userId = data.userId;
      return data.userId;
    } catch (error) {
      if (error.status === 401 && (await this.refresh()) === true) {
        const { data } = await this.get("/auth/session", { retry: false });
        this.userId = data.userId;
        return data.userId;
      }
      if (error.status === 401) return null;
      throw error;
    }
  }

  async signIn(login, password) {
    const { data } = await this.post("/auth/session", { login, password }, { retry: false });
    this.userId = data.userId;
    return data.userId;
  }

  async signOut() {
    try { await this.delete("/auth/session", { retry: false }); } finally { this.userId = null; this.consistency = null; }
  }
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
