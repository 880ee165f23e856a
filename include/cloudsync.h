/*
 * cloudsync.h — C ABI of libcloudsync (on-device backup sync agent).
 *
 * Hand-written; tests/ffi/c_header.rs checks it against src/ffi/capi/ and
 * ErrorKind::code() (function names, parameter types, struct fields, status
 * codes), so the two cannot drift apart. tests/c/test_capi.c exercises it.
 *
 * Conventions
 *  - Every function returns a cs_status: CS_OK (0) or the code of the failure.
 *    cs_last_error() then describes it (per thread). After every CS_OK it is
 *    "" -- also when a callback made a nested cs_* call that failed.
 *  - NULL pointers are CS_INVALID_ARGUMENT, never a crash (cs_close(NULL) is a
 *    no-op, like free(NULL)).
 *  - A panic inside the library is trapped and returned as CS_INTERNAL.
 *  - Strings are NUL-terminated UTF-8.
 *  - A cs_agent may be used from several threads at once (cs_cancel is meant
 *    to be called from another thread while cs_run_once runs), but cs_close
 *    must only be called once no other call on it is in progress; the handle
 *    is invalid afterwards.
 *  - Results go into caller-provided structs and buffers; a fixed-size char
 *    field is NUL-terminated (truncated on a UTF-8 character boundary) and ""
 *    when the value is absent. Times are ms since the Unix epoch (-1: none)
 *    or RFC 3339 UTC strings.
 *  - No ABI stability is promised before 1.0: structs may gain or change
 *    fields between versions. Build against the header of the library you
 *    load (cs_version() == CLOUDSYNC_VERSION).
 */
#ifndef CLOUDSYNC_H
#define CLOUDSYNC_H

#include <stddef.h>
#include <stdint.h>

/** The version of the library this header belongs to (see cs_version()). */
#define CLOUDSYNC_VERSION "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/** Opaque agent handle, from cs_open, freed by cs_close. */
typedef struct cs_agent cs_agent;

/** CS_OK or one of the codes below (equal to ErrorKind::code() in Rust). */
typedef int32_t cs_status;

/** Status codes. Stable across releases; new codes may be added. */
enum cs_status_code {
    CS_OK = 0, /**< Success */
    CS_BAD_SIGNATURE = 10, /**< An envelope carried no valid signature from a trusted key of the role */
    CS_THRESHOLD_NOT_MET = 11, /**< Some, but fewer than the threshold of, distinct trusted keys signed */
    CS_ROLLBACK = 12, /**< A version went down, or the same version arrived with different bytes */
    CS_VERSION_GAP = 13, /**< A root version skipped ahead by more than one */
    CS_EXPIRED = 14, /**< The root or config is past expires_at (against the freeze-safe clock) */
    CS_WRONG_PAYLOAD_TYPE = 15, /**< The envelope's payloadType is not the one expected */
    CS_MALFORMED = 16, /**< Input bytes could not be parsed or miss required fields */
    CS_INVALID_ENDPOINT = 17, /**< A config endpoint or host rule breaks the residency rules */
    CS_NO_CONFIG = 18, /**< No verified config is installed (uploads are off) */
    CS_ROOT_MISMATCH = 19, /**< The trust is not anchored in the root passed to cs_open (the stored root is newer and not yet verified: cs_refresh_config): uploads and config installs are refused */
    CS_NO_REGION = 20, /**< No region is approved for this account (uploads are off) */
    CS_NO_ACCOUNT = 22, /**< No account is signed in, the service needs one and none was set, or the account changed during the run */
    CS_RESIDENCY = 21, /**< A URL or peer outside the approved region was refused before any byte was sent */
    CS_BUSY = 30, /**< Another runner holds the queue (cs_last_error says which and until when), this run was superseded, or the database is locked */
    CS_STORAGE_CORRUPT = 40, /**< The database file is damaged */
    CS_NOT_A_DATABASE = 41, /**< The file is not an SQLite database */
    CS_STORAGE_UNAVAILABLE = 42, /**< The database cannot be opened or written (read-only or missing directory) */
    CS_STORAGE_FULL = 43, /**< The disk (or the database's page budget) is full */
    CS_SCHEMA_TOO_NEW = 44, /**< The database was written by a newer cloudsync with a newer schema */
    CS_STORAGE = 45, /**< Any other SQLite failure */
    CS_SOURCE_IO = 46, /**< A source file could not be read */
    CS_SOURCE_CHANGED = 47, /**< The source file changed (or shrank, or vanished) while it was being uploaded; the upload starts again from a clean read */
    CS_NETWORK = 50, /**< Connecting, TLS, or a transfer failed (retryable) */
    CS_PROTOCOL = 51, /**< A server answered something the protocol does not allow */
    CS_REJECTED = 52, /**< The server refused the upload for good (e.g. 413); the item is dead */
    CS_UNAUTHORIZED = 53, /**< The server answered 401/403 before and after a refresh, or the credential provider returned nothing, failed or returned a malformed token. The run stops; items are left as they were */
    CS_CANCELLED = 60, /**< The run was cancelled */
    CS_NOT_FOUND = 61, /**< No item with that id */
    CS_INVALID_ARGUMENT = 62, /**< A caller passed an invalid argument (null, empty, out of range) */
    CS_INTERNAL = 99 /**< A bug: a panic was caught at the FFI edge, or an invariant broke */
};

/** cs_run_report.stopped values. */
enum cs_stop_reason {
    CS_STOP_DRAINED = 0, /**< No due item of the approved region is left */
    CS_STOP_TIME_UP = 1, /**< max_ms elapsed */
    CS_STOP_CANCELLED = 2, /**< cs_cancel, or the progress callback returned non-zero */
    CS_STOP_REGION_CHANGED = 3, /**< The approved region changed (or the config expired) mid-run */
    CS_STOP_ACCOUNT_CHANGED = 4 /**< Another account was signed in, or the account signed out, mid-run */
};

/** cs_event.type values. New types may be added: ignore the ones you do not know. */
enum cs_event_type {
    CS_EVENT_STARTED = 0, /**< An item was claimed and its upload attempt begins (total: its size) */
    CS_EVENT_PROGRESS = 1, /**< Bytes of the item in flight: sent of total (at most one per MiB, and the last) */
    CS_EVENT_DONE = 2, /**< The server confirmed the whole item (sent = total = its bytes); it left the queue */
    CS_EVENT_FAILED = 3, /**< The attempt failed: status, dead, next_attempt_at_ms */
    CS_EVENT_HELD = 4 /**< The item in flight is held: the region or the account changed during its upload */
};

/**
 * Progress callback of cs_run_once, called on the thread running it with the
 * `user` pointer given to cs_run_once. Return 0 to continue; any other value
 * cancels the run. Must not unwind (C++ exceptions) or longjmp out.
 */
typedef int (*cs_progress_fn)(void *user, int64_t item_id, uint64_t sent, uint64_t total);

/**
 * Credential callback (cs_set_credential_provider) for services whose config
 * declares "auth": "bearer". Asked for the token of (account, region,
 * service) at a run's first request to the service, and again with
 * refresh = 1 after the server refused it (401/403; a second refusal ends the
 * run with CS_UNAUTHORIZED). Write the token (out_len bytes, no NUL needed)
 * into out, which holds out_cap bytes (8192), and return:
 *   0   token written; the library copies it and zeroes out afterwards;
 *   1   no token (the account is not signed in): CS_UNAUTHORIZED, nothing sent;
 *   any other value, or *out_len > out_cap: failure, CS_UNAUTHORIZED
 *       ("... credential provider failed: callback returned N").
 * Threads: called on the thread running cs_run_once, with no lock of the
 * agent held. It may call back into the agent (a nested cs_run_once returns
 * CS_BUSY). It must not unwind (C++ exceptions) or longjmp out. The library
 * never keeps the token beyond the run, never logs or stores it.
 */
typedef int (*cs_credential_fn)(void *user, const char *account, const char *region,
                                const char *service, int refresh, char *out, size_t out_cap,
                                size_t *out_len);

/** Queue counters (cs_stats). */
typedef struct cs_queue_stats {
    uint64_t pending;       /**< Items waiting for a run */
    uint64_t uploading;     /**< Items claimed by the current runner */
    uint64_t failed;        /**< Items waiting for a retry */
    uint64_t dead;          /**< Items given up on */
    uint64_t held;          /**< Items held for another region */
    uint64_t done;          /**< Items confirmed (audit rows) */
    uint64_t pending_bytes; /**< Bytes not yet confirmed */
    int64_t next_due_at_ms; /**< When the next pending or failed item is due, ms since the epoch (in the past: due now); -1 when none waits */
} cs_queue_stats;

/** What one cs_run_once or cs_run_with_events did. */
typedef struct cs_run_report {
    char region[64];    /**< Region id uploaded to, NUL-terminated (truncated to 63 bytes) */
    uint64_t uploaded;  /**< Items confirmed */
    uint64_t bytes;     /**< Bytes of those items */
    uint64_t failed;    /**< Attempts that failed */
    uint64_t dead;      /**< Items that went dead in this run */
    uint64_t held;      /**< Items held for another region */
    uint64_t remaining; /**< Items still queued for the approved region */
    int32_t stopped;    /**< A cs_stop_reason */
    int64_t next_due_at_ms; /**< When the next queued item is due, ms since the epoch (in the past: due now); -1 when none waits. Schedule the next run for it */
} cs_run_report;

/** One event of cs_run_with_events (fields that do not apply to its type are 0, or -1 for times). */
typedef struct cs_event {
    int32_t type;               /**< A cs_event_type */
    cs_status status;           /**< CS_EVENT_FAILED: the failure's status code (CS_NETWORK, CS_REJECTED, ...); CS_OK otherwise */
    int64_t item_id;            /**< The item */
    uint64_t sent;              /**< PROGRESS: bytes sent; DONE: the item's bytes */
    uint64_t total;             /**< STARTED: the item's size; PROGRESS: its total; DONE: its bytes */
    int64_t next_attempt_at_ms; /**< FAILED: when the item is due again, ms since the epoch; -1 when dead (and for other types) */
    int32_t dead;               /**< FAILED: 1 if the item gave up for good (state "dead") */
} cs_event;

/**
 * Event callback of cs_run_with_events, called on the thread running it with
 * the `user` pointer given to it and no lock of the agent held (it may call
 * back into the agent; a nested run returns CS_BUSY). `e` is valid during the
 * call only. Each item's events come in order: STARTED, PROGRESS..., then at
 * most one of DONE, FAILED or HELD (none if the run stops first); the last
 * PROGRESS (sent == total) is delivered once. Return 0 to continue; any other
 * value cancels the run. Must not unwind (C++ exceptions) or longjmp out.
 */
typedef int (*cs_event_fn)(void *user, const cs_event *e);

/**
 * One queued item (cs_get_item, cs_list_items). Finished items leave the
 * queue: they are in the audit trail (cs_audit). The path is read with
 * cs_item_path: paths can be PATH_MAX long, which would make every cs_item
 * (and every array of them) eight times larger.
 */
typedef struct cs_item {
    int64_t id;                 /**< Item id */
    uint64_t size;              /**< Size in bytes as enqueued */
    uint64_t confirmed_offset;  /**< Bytes the server confirmed so far */
    int64_t next_attempt_at_ms; /**< When it is due (again), ms since the epoch */
    int32_t priority;           /**< Priority given at enqueue */
    uint32_t attempts;          /**< Attempts that failed */
    cs_status last_error_status; /**< The status code of the last error (CS_OK: none) */
    char state[16];             /**< "pending", "uploading", "failed", "dead" or "held" */
    char held_reason[16];       /**< Why a held item waits: "region" (another region's) or "account" (another account's) */
    char last_error_kind[32];   /**< The last error's kind ("network", "rejected", ...: cs_status_name(last_error_status)) */
    char account[17];           /**< The first 8 bytes of the item's account stamp in hex (the same for one account's items; never the account id) */
    char service[65];           /**< Service name */
    char region[64];            /**< The region it is stamped for ("" until the first run with an approved region) */
    char last_error[256];       /**< The last error, "kind: message" (truncated to 255 bytes) */
} cs_item;

/** One finished upload (cs_audit). */
typedef struct cs_audit_record {
    int64_t id;             /**< Audit row id (increasing: page with after_id) */
    int64_t item_id;        /**< The item it finished */
    uint64_t bytes;         /**< Bytes the server confirmed (the whole file) */
    int64_t sent_bytes;     /**< Body bytes this client sent (re-sent bytes count again; 0 if the server already held it); -1: not recorded (older rows) */
    int64_t finished_at_ms; /**< When it finished, ms since the epoch */
    char service[65];       /**< Service name */
    char region[64];        /**< The region the bytes went to */
    char host[260];         /**< host:port of the endpoint */
    char peer_ip[46];       /**< The peer IP the bytes were written to ("" if unknown) */
    char sha256[65];        /**< Lowercase hex SHA-256 of the content */
} cs_audit_record;

/**
 * What is installed (cs_get_config_info); strings are "" when absent. No keys,
 * no URLs. anchored and trust_reset were added at the end: code built against
 * an older header passes a smaller struct and must be rebuilt.
 */
typedef struct cs_config_info {
    uint64_t root_version;    /**< Root version in force */
    uint64_t config_version;  /**< Config version (0: none installed) */
    uint64_t region_count;    /**< Regions the config defines */
    int32_t expired;          /**< 1 if the config or the root is expired (against the freeze-safe clock) */
    char expires_at[32];      /**< The config's expiry, RFC 3339 UTC */
    char refresh_due_at[32];  /**< When the next config refresh is due, RFC 3339 UTC ("" when the root lists no sources) */
    char approved_region[64]; /**< The approved region id */
    char country[3];          /**< The account country (ISO 3166-1 alpha-2) */
    int32_t anchored;         /**< 1 if the trust is vouched for by the root passed to cs_open; 0 while the stored root is newer and its chain not verified yet (cs_refresh_config re-walks it): nothing uploads, no region is approved */
    char trust_reset[128];    /**< Why the root passed to cs_open last replaced the trust the database held (a planted, tampered or restored file), a fixed sentence; "" when it did not, or once a config was accepted since */
} cs_config_info;

/**
 * What one cs_refresh_config installed. more_roots, config_error and
 * root_in_force were added at the end: code built against an older header
 * must be rebuilt.
 */
typedef struct cs_refresh_report {
    uint64_t roots_installed; /**< Root versions installed, one step each (0: the root did not change) */
    uint64_t root_version;    /**< The last root version installed, now in force (0: none installed) */
    uint64_t config_version;  /**< The config version installed (0: the config did not change) */
    int32_t changed;          /**< 1 if a root or a config was installed, 0 if nothing changed */
    char mirror[260];         /**< host:port of the mirror that answered, NUL-terminated */
    int32_t more_roots;       /**< 1 if the walk stopped at 64 roots with more to come (call again) */
    cs_status config_error;   /**< When roots were installed but the config was not: the config's failure (a cs_status, e.g. CS_THRESHOLD_NOT_MET); the next refresh is then due at once. CS_OK when none */
    uint64_t root_in_force;   /**< The root version in force after the refresh, changed or not */
} cs_refresh_report;

/**
 * Opens (or creates) the database at db_path with the firmware's initial root
 * envelope (root_len bytes). On success *out receives the handle; on failure
 * *out is set to NULL (when out is not NULL). The root must be a valid
 * self-signed root even when the database exists (CS_MALFORMED, ...). It is
 * the anchor of every trust decision: a newer root than the stored one is put
 * in force; an older one keeps the stored root only if the stored chain
 * verifies from it (until then cs_config_info.anchored is 0 and nothing
 * uploads); stored trust that cannot have come from it (another root of its
 * version, a chain that does not verify: a planted, tampered or restored
 * database) is replaced by it, with a config it does not sign dropped, and
 * cs_config_info.trust_reset says why. The queue is kept. Several handles and
 * processes may open one file: trust (root, config, country) lives in it.
 */
cs_status cs_open(const char *db_path, const uint8_t *root, size_t root_len, cs_agent **out);

/** Installs a root or config envelope (told apart by its payload type). While the
 *  trust is not anchored (cs_config_info.anchored 0), roots extend the chain from
 *  the root passed to cs_open and a config is CS_ROOT_MISMATCH. */
cs_status cs_install(cs_agent *agent, const uint8_t *envelope, size_t len);

/**
 * Fetches the next roots and the current config from the mirrors the root in
 * force lists ("sources") and installs them: root/<N+1>.json from the trusted
 * version up until a 404 (at most 64 per call), then config.json
 * (conditionally: an unchanged config costs a 304). Each goes through the same
 * checks as cs_install. Roots that verify are kept even when the config then
 * fails: the call returns CS_OK with out->config_error set (and the next
 * refresh due at once). A mirror that fails before any root was installed
 * changes nothing and hands over to the next; if all fail, the first one's
 * status is returned and *out is left as it was. While the stored root is
 * newer than the root passed to cs_open and not verified (anchored 0), the
 * walk re-verifies its chain from that root on that root's mirrors; a walk
 * that ends below the stored root puts that chain's newest root in force
 * (trust_reset says why), even if the call then fails.
 * cs_run_once refreshes first by itself when a refresh is due.
 * Blocks on the network for up to 30 s (its own deadline; cs_cancel does not
 * cut it short); may run while cs_run_once runs on another thread.
 * Statuses: CS_INVALID_ARGUMENT (the root lists no sources), CS_NETWORK
 * (unreachable, untrusted certificate, 5xx/408/429, the deadline),
 * CS_RESIDENCY (a redirect, a pin miss), CS_PROTOCOL, and what cs_install
 * returns for a document that does not verify (CS_MALFORMED, also for one
 * over 1 MiB or truncated; CS_BAD_SIGNATURE, CS_ROLLBACK, CS_EXPIRED, ...).
 */
cs_status cs_refresh_config(cs_agent *agent, cs_refresh_report *out);

/** Writes what is installed (versions, expiry, country, approved region, whether
 *  the trust is anchored and why it was last reset) into *out. */
cs_status cs_get_config_info(const cs_agent *agent, cs_config_info *out);

/** Sets the signed-in account's country (ISO 3166-1 alpha-2, any case), which
 *  is remembered for that account. Items queued for another region are held
 *  when it returns (cs_stats shows them at once). Signed out: CS_NO_ACCOUNT,
 *  nothing changes (a country belongs to an account). */
cs_status cs_set_country(cs_agent *agent, const char *iso2);

/**
 * Signs account in (NULL: signs out) and, unless country is NULL, sets the
 * account's country in the same step. A country belongs to an account and is
 * remembered for it (by a keyed hash of the id). With a NULL country the
 * account signed in already keeps its own (call it at every start); another
 * account gets the country it had when last signed in, or none: no region is
 * approved, cs_run_once fails with CS_NO_REGION and sends nothing, its items
 * wait, until it is given a country. (The first account of a queue that never
 * had one adopts the queue's country.) New items belong to the signed-in
 * account; another account's items are held until it signs in again. After a
 * sign-out no country is in force, cs_run_once and cs_enqueue fail with
 * CS_NO_ACCOUNT and the queue is kept; a country with a NULL account is
 * CS_INVALID_ARGUMENT. A run in progress stops (CS_STOP_ACCOUNT_CHANGED).
 */
cs_status cs_set_account(cs_agent *agent, const char *account, const char *country);

/**
 * Sets the credential callback and its user pointer (cb NULL: clears it;
 * bearer services then fail with CS_UNAUTHORIZED). Per handle, in memory
 * only. A run uses the callback set when it started: `user` must stay valid
 * until the callback is replaced and runs started before have returned, or
 * until cs_close.
 */
cs_status cs_set_credential_provider(cs_agent *agent, cs_credential_fn cb, void *user);

/**
 * Writes the approved region id into buf (len bytes, NUL-terminated): an empty
 * string when no region is approved. CS_INVALID_ARGUMENT if it does not fit;
 * CS_ROOT_MISMATCH while the trust is not anchored (cs_config_info.anchored 0).
 */
cs_status cs_approved_region(const cs_agent *agent, char *buf, size_t len);

/**
 * Enqueues one file (absolute path) for service; its id goes to *out_id.
 * Durable on return. A service the installed config does not offer is
 * CS_INVALID_ARGUMENT (without a config any service is accepted); a missing
 * file CS_SOURCE_IO; signed out CS_NO_ACCOUNT.
 */
cs_status cs_enqueue(cs_agent *agent, const char *path, const char *service, int32_t priority,
                     int64_t *out_id);

/**
 * Enqueues n files (absolute paths) for service in one transaction, all or
 * none: if one path is NULL, relative or unreadable, nothing is stored. Their
 * ids go to out_ids[0..n-1] (out_ids holds n ids; written only on success).
 * Statuses as cs_enqueue.
 */
cs_status cs_enqueue_all(cs_agent *agent, const char *const *paths, size_t n, const char *service,
                         int32_t priority, int64_t *out_ids);

/** Writes the queued item id into *out; CS_NOT_FOUND once it left the queue (see cs_audit). */
cs_status cs_get_item(const cs_agent *agent, int64_t id, cs_item *out);

/**
 * Writes the path of the queued item id into buf (len bytes, NUL-terminated;
 * 4096 always fits). CS_NOT_FOUND once it left the queue; CS_INVALID_ARGUMENT
 * if it does not fit.
 */
cs_status cs_item_path(const cs_agent *agent, int64_t id, char *buf, size_t len);

/**
 * Writes up to cap queued items whose id is above after_id, by id, into out,
 * and how many into *out_len. state is NULL (all) or one of the cs_item.state
 * names (CS_INVALID_ARGUMENT otherwise; "done" lists nothing: finished items
 * are in the audit trail). To page, start with after_id 0 and pass the last
 * id seen until *out_len < cap: each page reads only its own rows, so it
 * costs the same deep in a large queue. A negative after_id is
 * CS_INVALID_ARGUMENT.
 */
cs_status cs_list_items(const cs_agent *agent, const char *state, int64_t after_id, cs_item *out,
                        size_t cap, size_t *out_len);

/** Revives dead items: pending again, or held if their region is no longer approved; count in *out_count. */
cs_status cs_retry_dead(cs_agent *agent, uint64_t *out_count);

/** Removes the queued item id (CS_NOT_FOUND if there is none); its server-side upload is terminated at the next run, if possible. */
cs_status cs_remove(cs_agent *agent, int64_t id);

/**
 * Writes up to cap audit rows (finished uploads) whose id is above after_id,
 * oldest first, into out, and how many into *out_len. Page with the last id
 * (as cs_list_items); a negative after_id is CS_INVALID_ARGUMENT.
 */
cs_status cs_audit(const cs_agent *agent, int64_t after_id, cs_audit_record *out, size_t cap,
                   size_t *out_len);

/** How many days finished uploads stay in the audit trail (400 unless set), into *out_days. */
cs_status cs_audit_retention_days(const cs_agent *agent, uint32_t *out_days);

/**
 * Sets the audit retention for every handle and process on the database,
 * 1..=36500 days (CS_INVALID_ARGUMENT otherwise, changing nothing), and
 * prunes what it makes due; how many rows went into *out_pruned.
 */
cs_status cs_set_audit_retention_days(cs_agent *agent, uint32_t days, uint64_t *out_pruned);

/**
 * Prunes audit rows past the retention in short transactions, at most 10,000
 * per call (call again while it prunes that many; runs also prune at their
 * end); how many went into *out_pruned.
 */
cs_status cs_prune_audit(cs_agent *agent, uint64_t *out_pruned);

/**
 * Uploads due items of the approved region until none is due, max_ms elapsed,
 * or cs_cancel is called from another thread. cb may be NULL. Per-item upload
 * failures are counted in *out, not returned. CS_ROOT_MISMATCH while the trust
 * is not anchored (cs_config_info.anchored 0), after the refresh it makes first.
 */
cs_status cs_run_once(cs_agent *agent, uint64_t max_ms, cs_progress_fn cb, void *user,
                      cs_run_report *out);

/**
 * cs_run_once with one callback for progress and the per-item events
 * (cs_event: started, progress, done, failed with its status, held), each
 * completion exactly once. cb may be NULL. *out says when the next item is
 * due (next_due_at_ms), to schedule the next run.
 */
cs_status cs_run_with_events(cs_agent *agent, uint64_t max_ms, cs_event_fn cb, void *user,
                             cs_run_report *out);

/** Asks a cs_run_once running on another thread to stop soon. Never blocks. */
cs_status cs_cancel(const cs_agent *agent);

/** Writes the queue counters into *out. */
cs_status cs_stats(const cs_agent *agent, cs_queue_stats *out);

/** Restamps held items to the approved region (needs the user's consent); count in *out_count. */
cs_status cs_rehome(cs_agent *agent, uint64_t *out_count);

/** cs_rehome bound to consent: only if region is still the approved region;
 *  CS_RESIDENCY (nothing changed) if another handle or process moved the
 *  account since the user was asked. Count in *out_count. */
cs_status cs_rehome_to(cs_agent *agent, const char *region, uint64_t *out_count);

/** Deletes held items; count in *out_count. */
cs_status cs_discard_held(cs_agent *agent, uint64_t *out_count);

/** Frees the handle (closing the database). NULL is a no-op returning CS_OK. */
cs_status cs_close(cs_agent *agent);

/**
 * The message of the last failed call on this thread. "" after every call
 * that returned CS_OK, even when a callback made a nested cs_* call that
 * failed during it. Never NULL; valid until the next cs_* call on the same
 * thread.
 */
const char *cs_last_error(void);

/** The stable name of a status code ("ok", "malformed", ...; "unknown" otherwise). Static. */
const char *cs_status_name(cs_status status);

/** The library's version, e.g. "0.1.0" (compare with CLOUDSYNC_VERSION). Static; does not touch cs_last_error. */
const char *cs_version(void);

#ifdef CLOUDSYNC_TEST_HOOKS
/** Test builds only (cargo feature ffi-test-hooks): panics inside the library; returns CS_INTERNAL. */
cs_status cs_test_panic(void);
#endif

#ifdef __cplusplus
}
#endif

#endif /* CLOUDSYNC_H */
