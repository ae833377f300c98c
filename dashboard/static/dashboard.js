// edm dashboard: the few things htmx does not do by itself. No build step, no dependencies.
(function () {
  "use strict";

  const csrf = () => document.body.dataset.csrf || "";

  function toast(message) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.classList.remove("hidden");
    clearTimeout(box._timer);
    box._timer = setTimeout(() => box.classList.add("hidden"), 8000);
  }

  async function detailOf(response) {
    try {
      const body = await response.json();
      if (body && typeof body.detail === "string") return body.detail;
    } catch (_) { /* not JSON */ }
    return `${response.status} ${response.statusText}`;
  }

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    if (!response.ok) {
      if (response.status === 401) window.location = "/login?next=" + encodeURIComponent(location.pathname);
      throw new Error(await detailOf(response));
    }
    return response.json();
  }

  // Live parts that fail say why, once, instead of freezing silently.
  document.addEventListener("htmx:responseError", async (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status === 401) {
      window.location = "/login?next=" + encodeURIComponent(location.pathname);
      return;
    }
    let message = `${xhr.status} ${xhr.statusText}`;
    try { message = JSON.parse(xhr.responseText).detail || message; } catch (_) { /* keep */ }
    toast(message);
  });
  document.addEventListener("htmx:sendError", () => toast("The server cannot be reached; retrying."));

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // Tabs: a button with data-tab shows the sibling panel with the same data-panel.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-tab]");
    if (!button) return;
    const scope = button.closest(".tabs").parentElement;
    scope.querySelectorAll("[data-tab]").forEach((b) => b.classList.toggle("active", b === button));
    scope.querySelectorAll("[data-panel]").forEach((panel) => {
      panel.classList.toggle("hidden", panel.dataset.panel !== button.dataset.tab);
    });
  });

  function setUpSchedule() {
    const form = document.getElementById("schedule-form");
    if (!form) return;
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const select = form.querySelector("#timezone");
    if (zone && select && [...select.options].some((o) => o.value === zone)) select.value = zone;
    const update = () => {
      const when = form.querySelector("input[name=when]:checked").value;
      form.querySelector(".schedule-at").classList.toggle("hidden", when === "now");
      form.querySelector(".schedule-local").classList.toggle("hidden", when !== "local_time");
      form.querySelector("#at").required = when !== "now";
    };
    form.addEventListener("change", update);
    update();
  }

  function setUpUpload() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const input = form.querySelector("#file");
    const zone = document.getElementById("dropzone");
    const fileName = document.getElementById("file-name");
    const errorBox = document.getElementById("upload-error");
    const showFile = () => {
      if (input.files.length) fileName.textContent = `${input.files[0].name} (${input.files[0].size.toLocaleString()} bytes)`;
    };
    input.addEventListener("change", showFile);
    ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("over")));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        showFile();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      errorBox.classList.add("hidden");
      if (!input.files.length) {
        errorBox.textContent = "Choose a CSV file first (or drop one on the box).";
        errorBox.classList.remove("hidden");
        return;
      }
      const data = new FormData(form);
      const request = new XMLHttpRequest();
      const bar = document.getElementById("upload-bar");
      const percent = document.getElementById("upload-percent");
      document.getElementById("upload-progress").classList.remove("hidden");
      form.querySelector("#upload-button").disabled = true;
      request.upload.addEventListener("progress", (progress) => {
        if (!progress.lengthComputable) return;
        const share = (100 * progress.loaded) / progress.total;
        bar.style.width = `${share}%`;
        percent.textContent = `${share.toFixed(0)}%`;
      });
      request.addEventListener("load", () => {
        let body = {};
        try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
        if (request.status === 202) {
          document.getElementById("upload-status").textContent = "Uploaded: importing…";
          window.location = `/lists/imports/${body.id}`;
          return;
        }
        form.querySelector("#upload-button").disabled = false;
        document.getElementById("upload-progress").classList.add("hidden");
        errorBox.textContent = body.detail || `The upload failed (${request.status}).`;
        errorBox.classList.remove("hidden");
      });
      request.addEventListener("error", () => {
        form.querySelector("#upload-button").disabled = false;
        errorBox.textContent = "The upload was interrupted: check the connection and try again.";
        errorBox.classList.remove("hidden");
      });
      request.open("POST", "/api/imports");
      request.setRequestHeader("X-CSRF-Token", csrf());
      request.send(data);
    });
  }

  function setUpTemplateEditor() {
    const editor = document.getElementById("template-editor");
    if (!editor) return;
    const name = editor.dataset.name;
    const field = (id) => document.getElementById(id);
    const source = () => ({
      subject: field("subject").value,
      html: field("html").value,
      text: field("text").value.trim() ? field("text").value : null,
    });
    const listSelect = field("preview-list");
    const recipientSelect = field("preview-recipient");
    const search = field("preview-search");
    const previewError = field("preview-error");
    let timer = null;

    async function loadRecipients() {
      if (!listSelect) return;
      const query = new URLSearchParams({ q: search.value, limit: "50" });
      try {
        const page = await api("GET", `/api/lists/${listSelect.value}/recipients?${query}`);
        recipientSelect.innerHTML = "";
        page.recipients.forEach((recipient) => {
          const option = document.createElement("option");
          option.value = recipient.id;
          option.textContent = recipient.email;
          recipientSelect.appendChild(option);
        });
        preview();
      } catch (error) {
        toast(error.message);
      }
    }

    async function preview() {
      if (!listSelect) return;
      const body = { source: source(), list_id: Number(listSelect.value) };
      if (recipientSelect.value) body.recipient_id = Number(recipientSelect.value);
      try {
        const rendered = await api("POST", "/api/templates/preview", body);
        previewError.classList.add("hidden");
        field("preview-subject").textContent = rendered.subject;
        field("preview-frame").srcdoc = rendered.html;
        field("preview-text").textContent = rendered.text;
      } catch (error) {
        previewError.textContent = error.message;
        previewError.classList.remove("hidden");
      }
    }

    const schedulePreview = () => {
      clearTimeout(timer);
      timer = setTimeout(preview, 400);
    };
    ["subject", "html", "text"].forEach((id) => field(id).addEventListener("input", schedulePreview));
    if (listSelect) {
      listSelect.addEventListener("change", loadRecipients);
      recipientSelect.addEventListener("change", preview);
      search.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(loadRecipients, 300);
      });
      loadRecipients();
    }

    // A viewer's page has neither the save button nor the test form.
    field("save-template")?.addEventListener("click", async () => {
      const status = field("save-status");
      status.textContent = "Saving…";
      try {
        await api("PUT", `/api/templates/${encodeURIComponent(name)}`, source());
        status.textContent = "Saved.";
      } catch (error) {
        status.textContent = "";
        toast(`Not saved: ${error.message}`);
      }
    });

    const check = field("check-template");
    if (check) {
      check.addEventListener("click", async () => {
        const result = field("check-result");
        result.textContent = "Checking every recipient…";
        try {
          const answer = await api("POST", "/api/templates/check", { source: source(), list_id: Number(listSelect.value) });
          result.className = answer.ok ? "notice mt" : "warning-box mt";
          if (answer.ok) {
            result.textContent = `All ${answer.recipients.toLocaleString()} recipients have every variable the template uses.`;
          } else {
            const lacking = Object.entries(answer.missing).map(([variable, count]) => `{{ ${variable} }}: ${count.toLocaleString()} of ${answer.recipients.toLocaleString()} lack it`);
            result.textContent = `Scheduling would stop: ${lacking.join("; ")}.`;
          }
        } catch (error) {
          result.className = "error-box mt";
          result.textContent = error.message;
        }
      });
    }

    field("test-send")?.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = field("test-result");
      result.className = "hint";
      result.textContent = "Sending…";
      const body = { source: source(), to: field("test-to").value, from_address: field("test-from").value };
      if (listSelect) body.list_id = Number(listSelect.value);
      if (recipientSelect && recipientSelect.value) body.recipient_id = Number(recipientSelect.value);
      if (!listSelect) body.fields = {};
      try {
        const answer = await api("POST", "/api/templates/test-send", body);
        result.className = answer.accepted ? "notice" : "error-box";
        result.textContent = answer.accepted
          ? `Accepted by ${answer.relay} for ${answer.to}: ${answer.reply}`
          : answer.relay
            ? `Refused by ${answer.relay}: ${answer.reply}`
            : answer.reply;
      } catch (error) {
        result.className = "error-box";
        result.textContent = error.message;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpSchedule();
    setUpUpload();
    setUpTemplateEditor();
  });
})();
