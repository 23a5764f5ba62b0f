/*
 * Every WebAuthn form of Tessera (docs: /work/helper-notes contract, apps/mfa/views.py).
 *
 *   <form method="post" action="…" data-webauthn="create|get|conditional" data-options-url="…">
 *     csrfmiddlewaretoken, <input type="hidden" name="ceremony">,
 *     <input type="hidden" name="credential">, <p data-webauthn-error role="alert" hidden>,
 *     <button type="submit">
 *   </form>
 *
 * On submit (credential still empty): POST the form's fields to data-options-url (same origin,
 * X-CSRFToken), which answers {"ceremony": id, "publicKey": options} (py_webauthn's
 * options_to_json) or {"error": message}; navigator.credentials.create()/get() (WebAuthn L2
 * §5.1.3/§5.1.4); the credential as JSON (base64url, the shape py_webauthn's parse_*_json
 * reads: WebAuthn L3 §5.1.8/§5.1.9 toJSON) into `credential`; then the form is submitted.
 * "conditional" also starts a conditional-mediation get() on load (WebAuthn L3 §5.1.4.1,
 * autofill of passkeys in an input with autocomplete="… webauthn").
 * No inline script, no eval: the page's CSP may forbid both.
 */
(function () {
  "use strict";

  var WAITING = {
    create: "Waiting for your security key or passkey…",
    get: "Waiting for your security key or passkey…",
    conditional: "Waiting for your passkey…",
  };
  var conditionalAbort = null; // the pending conditional get(), aborted before a modal one

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) {
      text += String.fromCharCode(bytes[i]);
    }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromBase64url(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    base64 += "===".slice((base64.length + 3) % 4);
    var text = atob(base64);
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) {
      bytes[i] = text.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      var copy = Object.assign({}, item);
      copy.id = fromBase64url(item.id);
      return copy;
    });
  }

  function creationOptions(json) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    var options = Object.assign({}, json);
    options.challenge = fromBase64url(json.challenge);
    options.user = Object.assign({}, json.user, { id: fromBase64url(json.user.id) });
    options.excludeCredentials = descriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    var options = Object.assign({}, json);
    options.challenge = fromBase64url(json.challenge);
    options.allowCredentials = descriptors(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") {
      try {
        return credential.toJSON();
      } catch (ignored) {
        // some browsers' toJSON throws on extension results; encode by hand below
      }
    }
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults
        ? credential.getClientExtensionResults()
        : {},
      response: { clientDataJSON: toBase64url(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      if (response.userHandle) {
        json.response.userHandle = toBase64url(response.userHandle);
      }
    }
    return json;
  }

  function field(form, name) {
    return form.querySelector('input[name="' + name + '"]');
  }

  function showError(form, message) {
    var box = form.querySelector("[data-webauthn-error]");
    if (!box) {
      return;
    }
    box.textContent = message;
    box.hidden = !message;
  }

  function explain(error) {
    var name = error && error.name;
    if (name === "NotAllowedError") {
      return "The request was cancelled or timed out. Try again when your security key or passkey is ready.";
    }
    if (name === "InvalidStateError") {
      return "This security key or passkey is registered already.";
    }
    if (name === "NotSupportedError") {
      return "This browser or device cannot use a security key or passkey here.";
    }
    if (name === "SecurityError") {
      return "This page's address cannot use security keys or passkeys.";
    }
    if (name === "AbortError") {
      return "";
    }
    return (error && error.message) || "Something went wrong with your security key or passkey.";
  }

  function fetchOptions(form) {
    var body = new URLSearchParams(new FormData(form));
    body.delete("credential");
    body.delete("ceremony");
    var token = field(form, "csrfmiddlewaretoken");
    return fetch(form.dataset.optionsUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "X-CSRFToken": token ? token.value : "",
      },
      body: body,
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (data) {
          if (!response.ok || !data.publicKey) {
            var failure = new Error(
              data.error_description || data.error || "The server could not start the request."
            );
            failure.name = "ServerError";
            throw failure;
          }
          return data;
        });
    });
  }

  function ceremony(form, mode, mediation, signal) {
    return fetchOptions(form).then(function (data) {
      var request;
      if (mode === "create") {
        request = navigator.credentials.create({ publicKey: creationOptions(data.publicKey) });
      } else {
        var options = { publicKey: requestOptions(data.publicKey) };
        if (mediation) {
          options.mediation = mediation;
        }
        if (signal) {
          options.signal = signal;
        }
        request = navigator.credentials.get(options);
      }
      return request.then(function (credential) {
        if (!credential) {
          var none = new Error("No credential was chosen.");
          none.name = "NotAllowedError";
          throw none;
        }
        field(form, "ceremony").value = data.ceremony;
        field(form, "credential").value = JSON.stringify(credentialJSON(credential));
        form.submit(); // the native submit: no second submit event
      });
    });
  }

  function busy(form, on) {
    var buttons = form.querySelectorAll("button[type=submit], button:not([type])");
    buttons.forEach(function (button) {
      if (on) {
        button.dataset.label = button.dataset.label || button.textContent;
        button.textContent = WAITING[form.dataset.webauthn] || WAITING.get;
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
      } else {
        if (button.dataset.label) {
          button.textContent = button.dataset.label;
        }
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    });
  }

  function onSubmit(event) {
    var form = event.target;
    if (field(form, "credential").value) {
      return; // filled: the form goes to the server as usual
    }
    event.preventDefault();
    if (conditionalAbort) {
      conditionalAbort.abort(); // one WebAuthn request at a time (Credential Management §2.5)
      conditionalAbort = null;
    }
    showError(form, "");
    busy(form, true);
    var mode = form.dataset.webauthn === "create" ? "create" : "get";
    ceremony(form, mode, null, null).catch(function (error) {
      busy(form, false);
      showError(form, explain(error));
      if (form.dataset.webauthn === "conditional") {
        startConditional(form);
      }
    });
  }

  function startConditional(form) {
    if (
      !window.PublicKeyCredential ||
      typeof PublicKeyCredential.isConditionalMediationAvailable !== "function"
    ) {
      return;
    }
    PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
      if (!available || conditionalAbort) {
        return;
      }
      var controller = new AbortController();
      conditionalAbort = controller;
      form.dataset.conditional = "pending";
      ceremony(form, "get", "conditional", controller.signal).catch(function (error) {
        if (conditionalAbort === controller) {
          conditionalAbort = null;
        }
        form.dataset.conditional = "";
        // Asked in the background, not by the person: its failure (e.g. SecurityError on an
        // IP-address origin, where WebAuthn never works) is no message for them. The button
        // asks again and says why when it fails.
        if (error && error.name !== "AbortError" && window.console) {
          console.debug("passkey autofill unavailable:", error.name);
        }
      });
    });
  }

  function start() {
    var forms = document.querySelectorAll("form[data-webauthn]");
    if (!window.PublicKeyCredential || !navigator.credentials) {
      forms.forEach(function (form) {
        form.hidden = true;
      });
      document.querySelectorAll("[data-webauthn-unsupported]").forEach(function (note) {
        note.hidden = false;
      });
      return;
    }
    forms.forEach(function (form) {
      form.addEventListener("submit", onSubmit);
      if (form.dataset.webauthn === "conditional") {
        startConditional(form);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
