// Meridian's admin panel: the little script the pages need. Uploads go straight from the
// browser to the S3 listener of the node geo routing picks, with the presigned URLs of
// POST /api/v1/uploads (one PUT, or a multipart plan for large files), with a progress bar.
// Also: copy-to-clipboard, and refreshing the session before its access token expires.
"use strict";

(function () {
  const REFRESH_MARGIN_SECS = 60;

  // --- Session refresh: the page layer refreshes on navigation; a page left open refreshes here.
  function expiresAt() {
    return Number(document.body.dataset.expiresAt || 0);
  }
  async function refreshSession() {
    const response = await fetch("/api/v1/session/refresh", { method: "POST", credentials: "same-origin" });
    if (!response.ok) throw new Error("your session has ended: sign in again");
    const session = await response.json();
    document.body.dataset.expiresAt = String(session.expires_at);
    scheduleRefresh();
  }
  function scheduleRefresh() {
    const at = expiresAt();
    if (!at) return;
    const delay = Math.max(5, at - REFRESH_MARGIN_SECS - Date.now() / 1000) * 1000;
    window.setTimeout(() => refreshSession().catch(() => {}), Math.min(delay, 2 ** 31 - 1));
  }
  async function freshSession() {
    if (expiresAt() && expiresAt() - Date.now() / 1000 < REFRESH_MARGIN_SECS) await refreshSession();
  }

  // --- Uploads
  function send(method, url, body, headers, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded); };
      xhr.onload = () => (xhr.status >= 200 && xhr.status < 300
        ? resolve(xhr)
        : reject(new Error(`the storage node answered ${xhr.status}`)));
      xhr.onerror = () => reject(new Error("the storage node could not be reached"));
      xhr.send(body);
    });
  }

  function size(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
  }

  async function upload(form) {
    const file = form.elements.file.files[0];
    if (!file) return;
    const bucket = form.elements.bucket.value;
    const key = (form.elements.key && form.elements.key.value.trim()) || file.name;
    const box = form.querySelector(".progress");
    const bar = box.querySelector("progress");
    const text = box.querySelector(".progress-text");
    const button = form.querySelector("button[type=submit]");
    box.hidden = false;
    box.classList.remove("failed");
    button.disabled = true;
    const show = (loaded) => {
      const percent = file.size ? Math.floor((loaded / file.size) * 100) : 100;
      bar.value = percent;
      text.textContent = `${percent}% · ${size(loaded)} of ${size(file.size)}`;
    };
    show(0);
    try {
      await freshSession();
      const contentType = file.type || "application/octet-stream";
      const response = await fetch("/api/v1/uploads", {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ bucket, key, size: file.size, content_type: contentType }),
      });
      const plan = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(plan.message || `the panel answered ${response.status}`);
      if (plan.put) {
        await send("PUT", plan.put.url, file, plan.headers, show);
      } else {
        await multipart(plan.multipart, file, show);
      }
      bar.value = 100;
      text.textContent = `Uploaded ${size(file.size)} to ${plan.node.region}`;
      const done = new URL(form.dataset.done || "/files", window.location.href);
      done.searchParams.set("notice", "uploaded");
      done.searchParams.set("name", `${bucket}/${key}`);
      if (done.pathname === "/files") done.searchParams.set("bucket", bucket);
      window.location.assign(done.toString());
    } catch (error) {
      box.classList.add("failed");
      text.textContent = `Upload failed: ${error.message}`;
      button.disabled = false;
    }
  }

  // Parts go one after another (a few at once would be faster, but the bar is what counts
  // here); each part's ETag comes back through CORS (the S3 listener exposes it).
  async function multipart(plan, file, show) {
    const etags = [];
    let done = 0;
    try {
      for (const part of plan.parts) {
        const start = (part.part_number - 1) * plan.part_size;
        const xhr = await send("PUT", part.url, file.slice(start, start + part.size), {}, (loaded) => show(done + loaded));
        done += part.size;
        etags.push(`<Part><PartNumber>${part.part_number}</PartNumber><ETag>${xhr.getResponseHeader("ETag")}</ETag></Part>`);
      }
      const body = `<CompleteMultipartUpload>${etags.join("")}</CompleteMultipartUpload>`;
      await send("POST", plan.complete.url, body, { "content-type": "application/xml" }, () => {});
    } catch (error) {
      send("DELETE", plan.abort.url, null, {}, () => {}).catch(() => {});
      throw error;
    }
  }

  // --- Copy to clipboard
  async function copy(button) {
    const field = document.querySelector(button.dataset.copy);
    if (!field) return;
    try {
      await navigator.clipboard.writeText(field.value);
    } catch (_) {
      field.select();
      document.execCommand("copy");
    }
    const label = button.textContent;
    button.textContent = "Copied";
    window.setTimeout(() => { button.textContent = label; }, 2000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    scheduleRefresh();
    for (const form of document.querySelectorAll("form[data-upload]")) {
      form.addEventListener("submit", (event) => { event.preventDefault(); upload(form); });
    }
    for (const button of document.querySelectorAll("[data-copy]")) {
      button.addEventListener("click", () => copy(button));
    }
    for (const select of document.querySelectorAll("select[data-autosubmit]")) {
      select.addEventListener("change", () => select.form.submit());
    }
  });
})();
