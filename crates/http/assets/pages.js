// The script of Portcullis's built-in pages (/reset-password, /verify-email).
// Served from the service's own origin; the pages allow no other script.
// The token stays in the address bar: it is read here and posted to the API
// of the same origin, never written into the page.
"use strict";

(function () {
  const token = new URLSearchParams(window.location.search).get("token") || "";
  const outcome = document.getElementById("outcome");

  function say(text, kind, items) {
    outcome.className = kind;
    outcome.textContent = text;
    if (items && items.length) {
      const list = document.createElement("ul");
      for (const item of items) {
        const entry = document.createElement("li");
        entry.textContent = item;
        list.appendChild(entry);
      }
      outcome.appendChild(list);
    }
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    let answer = {};
    try {
      answer = await response.json();
    } catch (_) {
      answer = {};
    }
    return { status: response.status, body: answer };
  }

  function failed(answer, invalidCode, invalidText) {
    if (answer.body.code === invalidCode) {
      say(invalidText, "error");
    } else if (answer.status === 429) {
      say("Too many attempts. Wait a minute, then try again.", "error");
    } else {
      say("Something went wrong on our side. Try again in a moment.", "error");
    }
  }

  function verifyEmail() {
    const button = document.getElementById("verify");
    if (!button) return;
    button.addEventListener("click", async function () {
      button.disabled = true;
      say("Verifying…", "pending");
      try {
        const answer = await post("/v1/auth/verify-email", { token: token });
        if (answer.status === 200) {
          button.hidden = true;
          say("Thank you: " + answer.body.user.email + " is verified.", "success");
          return;
        }
        failed(answer, "invalid_verification_token",
          "This link is invalid, used or expired. Ask for a new one from the application.");
        if (answer.body.code === "invalid_verification_token") return;
      } catch (_) {
        say("The service cannot be reached. Check your connection and try again.", "error");
      }
      button.disabled = false;
    });
  }

  async function showRules() {
    const list = document.getElementById("rules");
    try {
      const response = await fetch("/v1/auth/password-policy", { credentials: "omit" });
      const policy = await response.json();
      for (const rule of policy.rules) {
        const entry = document.createElement("li");
        entry.textContent = rule.message;
        entry.dataset.code = rule.code;
        list.appendChild(entry);
      }
    } catch (_) {
      list.hidden = true;
    }
  }

  function resetPassword() {
    const form = document.getElementById("reset-form");
    if (!form) return;
    showRules();
    const password = document.getElementById("new-password");
    const confirm = document.getElementById("confirm-password");
    const submit = document.getElementById("submit");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      if (password.value !== confirm.value) {
        say("The two passwords are not the same.", "error");
        return;
      }
      submit.disabled = true;
      say("Saving…", "pending");
      try {
        const answer = await post("/v1/auth/reset-password", { token: token, new_password: password.value });
        if (answer.status === 200) {
          form.hidden = true;
          say("Your password has been changed. Sign in with it now; every other session has ended.", "success");
          return;
        }
        if (answer.status === 422) {
          const broken = (answer.body.errors || []).map(function (e) { return e.message; });
          say("This password does not meet the rules:", "error", broken);
        } else {
          failed(answer, "invalid_reset_token",
            "This link is invalid, used or expired. Ask for a new one from the application.");
          if (answer.body.code === "invalid_reset_token") {
            form.hidden = true;
            return;
          }
        }
      } catch (_) {
        say("The service cannot be reached. Check your connection and try again.", "error");
      }
      submit.disabled = false;
    });
  }

  if (document.body.dataset.page === "verify-email") verifyEmail();
  if (document.body.dataset.page === "reset-password") resetPassword();
})();
