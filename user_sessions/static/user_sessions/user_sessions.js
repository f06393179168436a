/*
 * django-user-sessions: behaviour of the "Your devices" widget.
 *
 * htmx sends the confirmed POSTs (the dialog forms carry their own hx-*
 * attributes) and loads further pages of rows ("Show all"); this file fetches,
 * opens and closes the dialogs, keeps focus where a keyboard user expects it
 * and refreshes the list in place. It listens to no htmx event (their names
 * differ between htmx 2 and 4): it watches the DOM.
 *
 * A row's "Sign out" button submits the list's one shared form
 * (form="us-signout", formaction = that session's URL): without JavaScript it
 * posts, with it the button's URL answers an htmx GET with that session's
 * dialog, which goes into [data-us-dialog-slot].
 *
 * Configuration comes from data attributes on the widget root:
 *   data-us-refresh-url       the list URL (answers HX-Request with the list partial)
 *   data-us-refresh-interval  seconds between refreshes, 0 for none
 *   data-us-stream-url        the live feed (Server-Sent Events), when the server offers one
 *
 * With a stream the server says when the list changed and when this tab's
 * own session ended; polling stops while the stream is up and takes over
 * whenever it is down (WSGI, broker unreachable, offline). The root carries
 * data-us-live while the stream is up.
 */
(function () {
  "use strict";

  // Loaded twice (a site's <head> and the widget, or an htmx swap that
  // re-runs the script): only look for new widgets.
  if (window.UserSessions) {
    window.UserSessions.scan(document);
    return;
  }

  var ROOT = "[data-us-widget]";
  var LIST = "[data-us-list]";
  var ROW = "[data-handle]";
  var PAGE = "[data-us-page]";
  var SLOT = "[data-us-dialog-slot]";
  var DIALOGS =
    typeof window.HTMLDialogElement === "function" &&
    typeof window.HTMLDialogElement.prototype.showModal === "function";

  function scan(scope) {
    (scope || document).querySelectorAll(ROOT).forEach(init);
  }

  function init(root) {
    if (root.usState) {
      return;
    }
    // "swaps" counts lists htmx put in; a refresh that began before one is stale.
    // "extras" are the rows "Show all" added beyond the first page, "page" the
    // container of the "Show more" link that came with the last of them.
    var state = (root.usState = {
      root: root,
      trigger: null,
      timer: null,
      busy: false,
      swaps: 0,
      extras: [],
      page: null,
      clicked: null,
      dialogRequest: 0,
      // Live updates: the EventSource, whether it is up, the reconnect
      // timer and attempts so far, and a refresh owed to an event that
      // arrived while a dialog was open or a request was pending.
      source: null,
      live: false,
      reconnect: null,
      attempts: 0,
      pending: false,
      leave: null,
    });
    root.addEventListener("submit", function (event) {
      onSubmit(state, event);
    });
    root.addEventListener("click", function (event) {
      // event.submitter stands in for this where the browser has it.
      state.clicked = event.target.closest ? event.target.closest("button[formaction]") : null;
      var close = event.target.closest("[data-us-close]");
      var dialog = close && close.closest("dialog");
      if (dialog && dialog.open) {
        dialog.close();
      }
    });
    // "close" does not bubble; capturing still sees it.
    root.addEventListener(
      "close",
      function (event) {
        onClose(state, event.target);
      },
      true
    );
    new MutationObserver(function (records) {
      onMutations(state, records);
    }).observe(root, { childList: true, subtree: true });
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        stop(state);
      } else if (state.live) {
        if (state.pending) {
          refresh(state);
        }
      } else {
        // Back on the tab: catch up at once, then keep the rhythm.
        schedule(state, 0);
      }
    });
    schedule(state);
    listen(state);
  }

  // Dialogs ------------------------------------------------------------------

  function onSubmit(state, event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-us-confirm]")) {
      return;
    }
    var button = event.submitter || state.clicked || form.querySelector("button");
    state.clicked = null;
    if (!DIALOGS || !button) {
      // No dialog support: the plain form does the job (the server may ask
      // for confirmation on a page of its own).
      return;
    }
    var key = form.getAttribute("data-us-confirm");
    var dialog = key === "session" ? null : findDialog(state, key);
    if (key === "session" ? !button.hasAttribute("formaction") : !dialog) {
      return;
    }
    event.preventDefault();
    state.trigger = { element: button, handle: rowHandle(button), index: rowIndex(state, button) };
    if (dialog) {
      openDialog(dialog);
    } else {
      fetchDialog(state, button.formAction);
    }
  }

  // One dialog at a time, from the server: it words the question, and adds
  // the password field when the site asks for one.
  function fetchDialog(state, url) {
    var request = (state.dialogRequest += 1);
    getPartial(url)
      .then(function (response) {
        if (response === null) {
          return null;
        }
        if (response.status === 404) {
          // That session ended meanwhile: a refresh takes its row away.
          refresh(state);
          return null;
        }
        if (!response.ok) {
          throw new Error("dialog " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null || request !== state.dialogRequest) {
          return;
        }
        var template = document.createElement("template");
        template.innerHTML = html;
        var fresh = template.content.querySelector("dialog[data-us-dialog]");
        var slot = state.root.querySelector(SLOT);
        if (!fresh || !slot) {
          throw new Error("no dialog");
        }
        var dialog = document.importNode(fresh, true);
        slot.textContent = "";
        slot.appendChild(dialog);
        process(dialog);
        openDialog(dialog);
      })
      .catch(function () {
        // Ask on the confirmation page instead, as without JavaScript.
        var back = window.location.pathname + window.location.search;
        window.location.assign(
          url + (url.indexOf("?") < 0 ? "?" : "&") + "next=" + encodeURIComponent(back)
        );
      });
  }

  function process(element) {
    if (window.htmx && typeof window.htmx.process === "function") {
      window.htmx.process(element);
    }
  }

  // Dialogs are found by data-us-dialog, not by id: htmx 4 copies the old
  // attributes (such as "open") onto new elements of the same id while a swap
  // settles, which would leave a re-sent dialog half open.
  function findDialog(state, key) {
    var found = null;
    state.root.querySelectorAll("dialog[data-us-dialog]").forEach(function (dialog) {
      if (dialog.getAttribute("data-us-dialog") === key) {
        found = dialog;
      }
    });
    return found;
  }

  function openDialog(dialog) {
    dialog.removeAttribute("data-us-open");
    if (!dialog.open) {
      dialog.showModal();
    }
    // A password to type, else the safe choice: destructive buttons are
    // never the default.
    var target =
      dialog.querySelector("[aria-invalid='true']") ||
      dialog.querySelector("input:not([type='hidden'])") ||
      dialog.querySelector("[data-us-close]");
    if (target) {
      target.focus();
    }
  }

  function onClose(state, dialog) {
    if (!dialog || dialog.tagName !== "DIALOG") {
      return;
    }
    dialog.querySelectorAll("input[type='password']").forEach(function (input) {
      input.value = "";
    });
    if (dialog.isConnected) {
      // Cancelled (button or Escape). A dialog that left the page was
      // replaced by a response; onMutations takes care of focus then.
      restoreFocus(state);
    }
    if (state.pending) {
      // The list changed while the dialog was open.
      window.setTimeout(function () {
        refresh(state);
      }, 0);
    }
  }

  function onMutations(state, records) {
    records.forEach(function (record) {
      record.addedNodes.forEach(function (node) {
        if (node.nodeType !== 1) {
          return;
        }
        var list = node.matches(LIST) ? node : node.querySelector(LIST);
        if (list) {
          listArrived(state, list);
        }
        var page = node.matches(PAGE) ? node : node.querySelector(PAGE);
        if (page) {
          pageArrived(state, page);
        }
      });
    });
  }

  // htmx swapped in a new list: the answer to a confirmed sign-out.
  function listArrived(state, list) {
    state.swaps += 1;
    carryOver(state, list);
    var reopen = list.querySelector("dialog[data-us-open]");
    if (reopen) {
      // Refused (wrong password): the same dialog, now with the error.
      openDialog(reopen);
    } else {
      restoreFocus(state);
    }
    var message = list.getAttribute("data-us-announce");
    if (message) {
      announce(state, message);
    }
  }

  // The new list holds the first page only; rows "Show all" had added stay,
  // except the session that was just signed out. When every session fits
  // on the first page, there is nothing beyond it left to keep.
  function carryOver(state, list) {
    var extras = state.extras;
    var page = state.page;
    state.extras = [];
    state.page = null;
    var ended = list.getAttribute("data-us-ended");
    var rows = list.querySelector("[data-us-rows]");
    var more = list.querySelector("[data-us-more]");
    if (!page || !rows || !more || !more.querySelector("[href]") || ended === "others") {
      return;
    }
    var present = handlesIn(rows);
    extras.forEach(function (row) {
      var handle = row.getAttribute("data-handle");
      if (handle !== ended && !present[handle]) {
        rows.appendChild(row);
        state.extras.push(row);
      }
    });
    // A copy: htmx let go of the old link when it swapped the list out.
    var control = page.cloneNode(true);
    more.replaceWith(control);
    process(control);
    state.page = control;
  }

  // htmx swapped a page of rows in place of the "Show all" / "Show more" link:
  // its rows join the list, the link that came with them stays where it is.
  function pageArrived(state, page) {
    page.removeAttribute("data-us-page");
    var rows = state.root.querySelector(LIST + " [data-us-rows]");
    var incoming = page.querySelector("[data-us-page-rows]");
    if (!rows || !incoming) {
      return;
    }
    var present = handlesIn(rows);
    var first = null;
    childRows(incoming).forEach(function (row) {
      if (present[row.getAttribute("data-handle")]) {
        return; // Shown already: it moved up since the first page was drawn.
      }
      rows.appendChild(row);
      state.extras.push(row);
      first = first || row;
    });
    incoming.remove();
    state.page = page;
    var message = page.getAttribute("data-us-announce");
    page.removeAttribute("data-us-announce");
    if (message) {
      announce(state, message);
    }
    var active = document.activeElement;
    if (active && active !== document.body && active.isConnected) {
      return; // Focus went somewhere of the user's choosing meanwhile.
    }
    // Carry on where the new rows begin, as if the list had always been this long.
    var target =
      first || page.querySelector("[href]") || state.root.querySelector(".us-widget__heading");
    if (first) {
      first.setAttribute("tabindex", "-1");
    }
    if (target) {
      target.focus();
    }
  }

  function handlesIn(container) {
    var found = {};
    childRows(container).forEach(function (row) {
      found[row.getAttribute("data-handle")] = true;
    });
    return found;
  }

  function restoreFocus(state) {
    var trigger = state.trigger;
    state.trigger = null;
    var active = document.activeElement;
    if (active && active !== document.body && active.isConnected && !active.closest("dialog")) {
      return;
    }
    if (trigger && trigger.element && trigger.element.isConnected) {
      trigger.element.focus();
      return;
    }
    var rows = currentRows(state);
    var row = trigger && trigger.handle && rows.filter(function (r) {
      return r.getAttribute("data-handle") === trigger.handle;
    })[0];
    if (!row && trigger && trigger.index >= 0) {
      // The row is gone: its successor took its place, else its predecessor.
      var others = rows.filter(function (r) {
        return !r.hasAttribute("data-us-current");
      });
      var position = rows.length - others.length;
      row = others[Math.max(trigger.index - position, 0)] || others[others.length - 1];
    }
    var button = row && row.querySelector("button[formaction]");
    var fallback = button || state.root.querySelector(".us-widget__heading");
    if (fallback) {
      fallback.focus();
    }
  }

  function announce(state, message) {
    var status = state.root.querySelector("[data-us-status]");
    if (!status) {
      return;
    }
    // Emptying first makes the same message count as new.
    status.textContent = "";
    window.setTimeout(function () {
      status.textContent = message;
    }, 100);
  }

  function currentRows(state) {
    var list = state.root.querySelector(LIST);
    return list ? Array.prototype.slice.call(list.querySelectorAll("[data-us-rows] > " + ROW)) : [];
  }

  function rowHandle(element) {
    var row = element.closest(ROW);
    return row ? row.getAttribute("data-handle") : null;
  }

  function rowIndex(state, element) {
    var row = element.closest(ROW);
    return row ? currentRows(state).indexOf(row) : -1;
  }

  // Refreshing ---------------------------------------------------------------

  function interval(state) {
    var seconds = parseInt(state.root.getAttribute("data-us-refresh-interval"), 10);
    return state.root.getAttribute("data-us-refresh-url") && seconds > 0 ? seconds * 1000 : 0;
  }

  function stop(state) {
    window.clearTimeout(state.timer);
    state.timer = null;
  }

  function schedule(state, delay) {
    stop(state);
    var every = interval(state);
    if (!every || document.hidden || state.live) {
      return;
    }
    state.timer = window.setTimeout(function () {
      refresh(state);
    }, delay === undefined ? every : delay);
  }

  function refresh(state) {
    if (!state.root.isConnected) {
      return; // The widget left the page; so does its timer.
    }
    if (state.busy || document.hidden || state.root.querySelector("dialog[open]")) {
      // Never change the list under an open dialog or a pending answer.
      state.pending = true;
      schedule(state);
      return;
    }
    state.busy = true;
    state.pending = false;
    var swaps = state.swaps;
    getPartial(state.root.getAttribute("data-us-refresh-url"))
      .then(function (response) {
        return response !== null && response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html && swaps === state.swaps) {
          update(state, html);
        } else if (html) {
          // A swap overtook this answer: ask again for the latest list.
          state.pending = true;
        }
      })
      .catch(function () {
        // Offline or a server hiccup: the next round tries again.
      })
      .then(function () {
        state.busy = false;
        if (state.pending && state.live) {
          refresh(state);
        } else {
          schedule(state);
        }
      });
  }

  // Live updates -------------------------------------------------------------

  function listen(state) {
    var url = state.root.getAttribute("data-us-stream-url");
    if (!url || typeof window.EventSource !== "function" || state.source) {
      return;
    }
    // Where to come back to after signing in again.
    var back = window.location.pathname + window.location.search;
    var source = new window.EventSource(
      url + (url.indexOf("?") < 0 ? "?" : "&") + "next=" + encodeURIComponent(back)
    );
    state.source = source;
    // This tab is leaving (a sign-out form, a link): the "signed-out" its
    // own sign-out causes must not send it elsewhere than the form does.
    // Still here a while later (a download, a cancelled navigation, or back
    // from the back-forward cache): listen again.
    state.leave = function () {
      drop(state);
      state.reconnect = window.setTimeout(function () {
        state.reconnect = null;
        listen(state);
      }, 3000);
    };
    window.addEventListener("beforeunload", state.leave);
    source.addEventListener("ready", function () {
      state.live = true;
      state.attempts = 0;
      stop(state);
      state.root.setAttribute("data-us-live", "");
      // Whatever changed before the stream was up (or while it was down).
      refresh(state);
    });
    source.addEventListener("changed", function () {
      if (!state.root.isConnected) {
        drop(state);
        return;
      }
      refresh(state);
    });
    source.addEventListener("signed-out", function (event) {
      drop(state);
      var target = null;
      try {
        target = JSON.parse(event.data).url;
      } catch (error) {
        target = null;
      }
      if (target) {
        follow(target);
      } else {
        refresh(state);
      }
    });
    // Refused (signed out, too many streams, no broker), cut off or closed
    // by the server: poll now (a signed-out tab is sent to sign in by the
    // answer) and keep polling until a new stream is up.
    source.onerror = function () {
      drop(state);
      if (!state.root.isConnected) {
        return;
      }
      refresh(state);
      var delay = Math.min(1000 * Math.pow(2, state.attempts), 60000);
      state.attempts += 1;
      state.reconnect = window.setTimeout(function () {
        state.reconnect = null;
        listen(state);
      }, delay * (0.5 + Math.random() / 2));
    };
  }

  function drop(state) {
    if (state.source) {
      state.source.close();
      state.source = null;
      window.removeEventListener("beforeunload", state.leave);
    }
    window.clearTimeout(state.reconnect);
    state.reconnect = null;
    if (state.live) {
      state.live = false;
      state.root.removeAttribute("data-us-live");
      schedule(state);
    }
  }

  // A GET as htmx sends one, so the views answer with the partial. When the
  // server asks for a redirect (this session ended, signed out elsewhere),
  // the tab follows it and the caller gets null.
  function getPartial(url) {
    return window
      .fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "HX-Request": "true", "HX-Current-URL": window.location.href },
      })
      .then(function (response) {
        var redirect = response.headers.get("HX-Redirect");
        if (redirect) {
          follow(redirect);
          return null;
        }
        return response;
      });
  }

  function follow(url) {
    var target = new URL(url, window.location.href);
    if (target.origin === window.location.origin) {
      window.location.assign(target.href);
    }
  }

  // A keyed update instead of a swap: rows are matched by data-handle, only
  // what changed is touched, and nothing holding focus is replaced or moved.
  function update(state, html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var fresh = template.content.querySelector(LIST);
    var list = state.root.querySelector(LIST);
    if (!fresh || !list || state.root.querySelector("dialog[open]")) {
      return;
    }
    var rows = list.querySelector("[data-us-rows]");
    var freshRows = fresh.querySelector("[data-us-rows]");
    if (!rows || !freshRows) {
      return;
    }
    var existing = {};
    childRows(rows).forEach(function (row) {
      existing[row.getAttribute("data-handle")] = row;
    });
    var wanted = childRows(freshRows);
    var keep = {};
    wanted.forEach(function (row) {
      keep[row.getAttribute("data-handle")] = true;
    });
    var freshMore = fresh.querySelector("[data-us-more]");
    if (!freshMore || !freshMore.querySelector("[href]")) {
      // Every session fits on the first page now: nothing beyond it to keep.
      state.extras = [];
      state.page = null;
    }
    var extra = {};
    state.extras = state.extras.filter(function (row) {
      var handle = row.getAttribute("data-handle");
      extra[handle] = !keep[handle];
      return extra[handle];
    });
    var lostFocus = null;
    var demoted = [];
    Object.keys(existing).forEach(function (handle) {
      var row = existing[handle];
      if (!keep[handle] && !extra[handle]) {
        if (state.page) {
          // Expanded, only the first page is live: a row that left it may
          // just have been pushed below it, so it stays with the loaded ones.
          demoted.push(row);
          return;
        }
        if (row.contains(document.activeElement)) {
          lostFocus = { element: null, handle: handle, index: rowIndex(state, row) };
        }
        row.remove();
      }
    });
    state.extras = demoted.concat(state.extras);
    var previous = null;
    wanted.forEach(function (freshRow) {
      var row = existing[freshRow.getAttribute("data-handle")];
      if (!row) {
        row = document.importNode(freshRow, true);
        placeAfter(rows, row, previous);
        process(row);
      } else {
        syncParts(row, freshRow, false);
        var inPlace = previous ? previous.nextElementSibling === row : rows.firstElementChild === row;
        if (!inPlace && !row.contains(document.activeElement)) {
          placeAfter(rows, row, previous);
        }
      }
      previous = row;
    });
    syncParts(list, fresh, true);
    var others = list.querySelector("[data-us-others]");
    var freshOthers = fresh.querySelector("[data-us-others]");
    if (others && freshOthers) {
      others.hidden = freshOthers.hidden;
    }
    var more = list.querySelector("[data-us-more]");
    if (!state.page && more && freshMore && linkOf(more) !== linkOf(freshMore)) {
      // Not expanded: "Show all (N)" follows the count. Expanded, the
      // "Show more" link in place continues where the loaded rows end.
      if (!more.contains(document.activeElement)) {
        var control = document.importNode(freshMore, true);
        more.replaceWith(control);
        process(control);
      }
    }
    if (lostFocus) {
      state.trigger = lostFocus;
      restoreFocus(state);
    }
  }

  // Where the "Show all" link leads and what it says (htmx may have added
  // attributes of its own to the one in the page).
  function linkOf(container) {
    var link = container.querySelector("[href]");
    return link ? link.getAttribute("href") + " " + link.textContent : "";
  }

  function childRows(container) {
    return Array.prototype.filter.call(container.children, function (child) {
      return child.matches(ROW);
    });
  }

  function placeAfter(container, row, previous) {
    container.insertBefore(row, previous ? previous.nextElementSibling : container.firstElementChild);
  }

  // Parts marked data-us-sync hold text only, so replacing them is safe.
  function syncParts(container, fresh, outsideRows) {
    function parts(scope) {
      var found = {};
      scope.querySelectorAll("[data-us-sync]").forEach(function (part) {
        // The slot's dialog is not the list's to update (and shares names
        // with the "all other sessions" dialog).
        if (outsideRows && (part.closest(ROW) || part.closest(SLOT))) {
          return;
        }
        found[part.getAttribute("data-us-sync")] = part;
      });
      return found;
    }
    var current = parts(container);
    var incoming = parts(fresh);
    Object.keys(current).forEach(function (name) {
      var part = current[name];
      var replacement = incoming[name];
      if (replacement && replacement.outerHTML !== part.outerHTML) {
        part.replaceWith(document.importNode(replacement, true));
      }
    });
  }

  window.UserSessions = { scan: scan, init: init };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      scan(document);
    });
  } else {
    scan(document);
  }
})();
