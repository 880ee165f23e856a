package com.miui.cloudsync;

import java.lang.ref.PhantomReference;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * The on-device backup sync agent: verifies the signed regional config, keeps the durable upload
 * queue (an SQLite file in the app's private directory) and uploads queued files, over tus, only
 * to the region approved for the account's country.
 *
 * <p>Typical use: {@link #open} once per process with the root envelope shipped in the app; if
 * that root lists mirrors ({@code sources}), the agent fetches root rotations and the config
 * itself ({@link #refreshConfig}, and {@link #runOnce} first when one is due), otherwise call
 * {@link #installConfig} whenever a new config arrives; {@link #setCredentialProvider} after every
 * open, {@link #setAccount} when the account signs in, out or changes country ({@link
 * #setAccountCountry} when only the country changes), {@link #enqueue} from anywhere, and {@link
 * #runOnce} from a background job (WorkManager). Call {@link #close()} (or use try-with-resources) when done;
 * an agent dropped without {@link #close()} is freed (its database closed) some time after the
 * garbage collector finds it unreachable, which may be late or, if the heap is never collected,
 * never: do not rely on it.
 *
 * <p><b>Threading:</b> every method is thread-safe and may be called from any thread. Methods
 * that touch the database block briefly (milliseconds) and should not run on the main thread in
 * production; {@link #runOnce} blocks for the whole upload run and must run on a background
 * thread. {@link #cancel()} never blocks. {@link #close()} waits for calls in progress on other
 * threads (after cancelling a run in progress). After {@link #close()}, every method except
 * {@link #close()} and {@link #cancel()} throws {@link IllegalStateException}.
 *
 * <p><b>Errors:</b> failures are checked {@link SyncException}s (see its subclasses); null
 * arguments throw {@link NullPointerException}. A bug in the native library (a panic) arrives as
 * a {@link SyncException} of kind {@code internal} and never crashes the app.
 *
 * <p><b>Nullability:</b> every parameter and return value of the API is annotated, with {@code
 * org.jetbrains.annotations.NotNull} or {@code Nullable}, which Kotlin reads natively (e.g. {@link
 * #approvedRegion()} is a {@code String?}).
 *
 * <p>Example (Java 8; every call here off the main thread):
 *
 * <pre>{@code
 * // Once per process, e.g. lazily from the first background job (open does disk I/O):
 * // getNoBackupFilesDir(): never in a backup or device transfer (android/README.md).
 * SyncAgent agent = SyncAgent.open(
 *         new File(context.getNoBackupFilesDir(), "cloudsync.db").getPath(), shippedRoot);
 * agent.setCredentialProvider(tokens);
 * agent.setAccount(accountId, "IN");
 *
 * // In a WorkManager worker's doWork() (a background thread):
 * agent.enqueue(file.getAbsolutePath(), "backup", 0);
 * RunReport r = agent.runOnce(9 * 60_000, new RunListener() {
 *     public void onItemFailed(long id, String kind, boolean dead, long nextAttemptAt) {
 *         Log.w(TAG, "item " + id + ": " + kind + (dead ? " (given up)" : ""));
 *     }
 * });
 * long due = r.getNextDueAt(); // -1: nothing waits; else enqueue the next work request for then
 * }</pre>
 */
public final class SyncAgent implements AutoCloseable {
    /** The native handle; 0 once closed. Swapped to 0 only under the write lock. */
    private final AtomicLong handle;
    /**
     * Every native call holds the read lock, so {@link #close()} (write lock) waits for calls in
     * flight and no call can use a freed handle.
     */
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();

    /**
     * Frees the native agent when this object becomes unreachable without {@link #close()}. It
     * holds the handle and the lock, never the agent; {@link #close()} deregisters it.
     */
    private final Cleanup cleanup;

    private SyncAgent(long handle) {
        this.handle = new AtomicLong(handle);
        this.cleanup = Cleanup.register(this, handle, lock);
    }

    /**
     * The native agent of a {@link SyncAgent} dropped without {@link #close()} (issue 24: each
     * held 2 fds and ~120 KB until the process died). One PhantomReference per open agent, on one
     * shared queue drained by one lazily started daemon thread and by every {@link #open}. Not
     * {@code java.lang.ref.Cleaner}: Java 9 and Android API 33, above minSdk 24.
     *
     * <p>Why freeing then is safe: an unreachable agent has no call in flight and none can start,
     * since every call is made through the agent. The JIT may still declare the agent unreachable
     * while one of its methods runs a native call after its last use of {@code this}
     * ({@code Reference.reachabilityFence} is Java 9 / API 28), so this object also holds the
     * agent's lock (which references no agent) and frees the handle under the write lock, as
     * {@link #close()} does: a call in flight holds the read lock, so the free waits for it. It
     * never runs twice: {@link #close()} removes it from {@link #LIVE} before freeing, and only the
     * one that removes it from {@link #LIVE} frees the handle.
     */
    private static final class Cleanup extends PhantomReference<SyncAgent> {
        private static final ReferenceQueue<SyncAgent> QUEUE = new ReferenceQueue<>();
        /** Keeps each registered reference reachable until it is cleaned or deregistered. */
        private static final Set<Cleanup> LIVE = new HashSet<>();

        private static Thread thread;

        private final long handle;
        private final ReentrantReadWriteLock lock;

        private Cleanup(SyncAgent agent, long handle, ReentrantReadWriteLock lock) {
            super(agent, QUEUE);
            this.handle = handle;
            this.lock = lock;
        }

        static Cleanup register(SyncAgent agent, long handle, ReentrantReadWriteLock lock) {
            Cleanup c = new Cleanup(agent, handle, lock);
            synchronized (LIVE) {
                LIVE.add(c);
                if (thread == null) {
                    Thread t = new Thread(Cleanup::run, "cloudsync-agent-cleanup");
                    t.setDaemon(true);
                    t.start();
                    thread = t;
                }
            }
            return c;
        }

        /** Whether this was still registered; after {@code true}, nobody else frees the handle. */
        boolean deregister() {
            boolean was;
            synchronized (LIVE) {
                was = LIVE.remove(this);
            }
            clear();
            return was;
        }

        /** Frees the handles of the agents collected so far without blocking. */
        static void drain() {
            Reference<? extends SyncAgent> r;
            while ((r = QUEUE.poll()) != null) {
                ((Cleanup) r).free();
            }
        }

        private static void run() {
            while (true) {
                try {
                    ((Cleanup) QUEUE.remove()).free();
                } catch (InterruptedException e) {
                    // A daemon thread nobody interrupts on purpose; keep draining.
                } catch (Throwable t) {
                    // Never let one failure stop the cleanup of later agents.
                }
            }
        }

        private void free() {
            if (!deregister()) {
                return; // closed explicitly
            }
            freeHandle(handle, lock);
        }
    }

    /**
     * Native frees of a dropped agent's handle that failed: nobody is there to report them to,
     * so they are counted (for tests: a free of a handle freed before, which the native handle
     * registry refuses with a {@link SyncException} instead of crashing, would show here).
     */
    private static final AtomicLong FAILED_FREES = new AtomicLong();

    /**
     * Frees {@code handle} under the write lock of {@code lock}, as {@link Cleanup} does for a
     * dropped agent; a failure is counted ({@link #failedFrees()}), never thrown. Package-private
     * for tests.
     */
    static void freeHandle(long handle, @NotNull ReentrantReadWriteLock lock) {
        Lock write = lock.writeLock();
        write.lock();
        try {
            NativeBridge.close(handle);
        } catch (SyncException e) {
            FAILED_FREES.incrementAndGet();
        } finally {
            write.unlock();
        }
    }

    /** How many frees of dropped agents' handles failed in this process (for tests). */
    static long failedFrees() {
        return FAILED_FREES.get();
    }

    /**
     * Opens (or creates) the agent's database.
     *
     * <p>{@code initialRoot} must be a valid self-signed root even when the database exists. It
     * is the anchor of every trust decision, whatever the database says: a root newer than the
     * stored one is put in force (so shipping a rotated root in an app update works); an older one
     * keeps the stored root only if the stored chain verifies from it (until a refresh has
     * verified it, {@link ConfigInfo#isAnchored()} is {@code false} and nothing uploads); trust
     * that cannot have come from it (another root of its version, a chain that does not verify:
     * a planted, tampered or restored database) is replaced by it, with any config it does not
     * sign, and {@link ConfigInfo#getTrustReset()} says why. The queue is kept either way.
     *
     * <p><b>Threading:</b> any thread (it does disk I/O). Open one agent per database file and
     * share it. A second agent (or another process) on the same file is safe: the trust state
     * (root, config, country) lives in the file, so every agent sees the others' changes at once
     * and a run stops as soon as its region is no longer approved; they contend only for the
     * queue ({@link BusyException} from {@link #runOnce}).
     *
     * @param dbPath absolute path of the database file, e.g. {@code new
     *     File(context.getNoBackupFilesDir(), "cloudsync.db").getPath()} (a directory Android never
     *     backs up; elsewhere, the app's backup rules must exclude it: android/README.md); its
     *     directory must exist
     * @param initialRoot the signed root envelope shipped with the app
     * @return the open agent
     * @throws ConfigException if the root does not verify (kind {@code malformed}, {@code
     *     bad_signature}, {@code expired}, ...)
     * @throws StorageException if the database cannot be opened (kind {@code storage_unavailable},
     *     {@code not_a_database}, {@code storage_corrupt}, {@code schema_too_new}, ...)
     * @throws SyncException for other failures
     * @throws NullPointerException if an argument is null
     */
    @NotNull
    public static SyncAgent open(@NotNull String dbPath, @NotNull byte[] initialRoot)
            throws SyncException {
        Objects.requireNonNull(dbPath, "dbPath");
        Objects.requireNonNull(initialRoot, "initialRoot");
        Cleanup.drain();
        return new SyncAgent(NativeBridge.open(dbPath, initialRoot));
    }

    /**
     * Test only: like {@link #open}, and also trusts the PEM certificates in {@code extraCaPem}
     * for every region (a loopback test server's CA). Needs a native library built with the
     * {@code ffi-test-hooks} feature; otherwise throws {@link UnsatisfiedLinkError}. Never
     * available to apps (package-private).
     *
     * <p><b>Threading:</b> any thread.
     *
     * @param dbPath absolute path of the database file
     * @param initialRoot the signed root envelope
     * @param extraCaPem one or more PEM certificates
     * @return the open agent
     * @throws SyncException as {@link #open}, or kind {@code malformed} for bad PEM
     */
    @NotNull
    static SyncAgent openForTest(
            @NotNull String dbPath, @NotNull byte[] initialRoot, @NotNull byte[] extraCaPem)
            throws SyncException {
        Objects.requireNonNull(dbPath, "dbPath");
        Objects.requireNonNull(initialRoot, "initialRoot");
        Objects.requireNonNull(extraCaPem, "extraCaPem");
        Cleanup.drain();
        return new SyncAgent(NativeBridge.openForTest(dbPath, initialRoot, extraCaPem));
    }

    /** A native call made with the handle while holding the read lock. */
    private interface Call<T> {
        T call(long handle) throws SyncException;
    }

    private <T> T withHandle(Call<T> call) throws SyncException {
        Lock read = lock.readLock();
        read.lock();
        try {
            long h = handle.get();
            if (h == 0) {
                throw new IllegalStateException("SyncAgent is closed");
            }
            return call.call(h);
        } finally {
            read.unlock();
        }
    }

    /**
     * Installs a signed envelope: the next root (key rotation) or a config, told apart by its
     * payload type. A rejected envelope changes nothing; the last good config stays in force.
     * Installing the document already in force is a no-op.
     *
     * <p><b>Threading:</b> any thread (it does disk I/O).
     *
     * @param envelope the DSSE envelope bytes as received from the server
     * @throws ConfigException if it does not verify, is older than the installed one ({@code
     *     rollback}), expired, or malformed; kind {@code root_mismatch} for a config while the
     *     trust is not anchored ({@link ConfigInfo#isAnchored()}: roots are taken then, to extend
     *     the chain from the root passed to {@link #open})
     * @throws StorageException if it cannot be stored
     * @throws SyncException for other failures
     * @throws NullPointerException if {@code envelope} is null
     * @throws IllegalStateException if the agent is closed
     */
    public void installConfig(@NotNull byte[] envelope) throws SyncException {
        Objects.requireNonNull(envelope, "envelope");
        withHandle(h -> {
            NativeBridge.install(h, envelope);
            return null;
        });
    }

    /**
     * Describes what is installed: root and config versions, expiry, region ids, the account
     * country and the approved region, as stored in the database now (another {@code SyncAgent}
     * or process on the same file may have changed them).
     *
     * <p><b>Threading:</b> any thread.
     *
     * @return a snapshot
     * @throws StorageException if the database cannot be read or its trust row is damaged
     * @throws SyncException if the native call fails (kind {@code internal})
     * @throws IllegalStateException if the agent is closed
     */
    @NotNull
    public ConfigInfo configInfo() throws SyncException {
        return withHandle(NativeBridge::configInfo);
    }

    /**
     * Fetches the next roots and the current config from the mirrors the root in force lists
     * ({@code sources}) and installs them: {@code root/<N+1>.json} from the trusted version up
     * until the mirror has no next one (at most 64 per call), then {@code config.json}
     * (conditionally: an unchanged config costs a 304). Everything goes through the same checks as
     * {@link #installConfig} (thresholds, one root version at a time, no rollback, sticky expiry).
     * Roots that verify are kept even when the config then fails: the result's {@link
     * ConfigRefresh#getConfigError()} names the failure (and the next refresh is due at once). A
     * mirror that fails before any root was installed changes nothing; mirrors are tried in
     * order; if all fail, the first one's error is thrown. Requests carry no account, token,
     * cookie or queue data.
     *
     * <p>While the trust is not anchored ({@link ConfigInfo#isAnchored()} {@code false}), the
     * walk re-verifies the stored root's chain from the root passed to {@link #open}, on that
     * root's mirrors; a walk that ends below the stored root puts that chain's newest root in
     * force instead ({@link ConfigInfo#getTrustReset()} says why), even if the refresh then
     * throws.
     *
     * <p>{@link #runOnce} already refreshes first when {@link ConfigInfo#getRefreshDueAt()} has
     * passed; call this to refresh without uploading (e.g. a daily job, or when {@link
     * #runOnce} threw {@link ConfigException} kind {@code no_config} or {@code expired}).
     *
     * <p><b>Threading:</b> blocks on the network for up to 30 seconds (its own deadline; {@link
     * #cancel()} does not cut it short); call from a background thread, never the main thread. It
     * may run while {@link #runOnce} runs on another thread: a run whose region the new config
     * changes stops at its next buffer.
     *
     * @return what was installed ({@link ConfigRefresh#isUnchanged()} when nothing was)
     * @throws SyncException kind {@code invalid_argument} if the root lists no sources
     * @throws NetworkException kind {@code network}: no mirror could be reached (or its
     *     certificate is not trusted), one answered 5xx/408/429, a transfer failed, or the
     *     30-second deadline passed; kind {@code protocol}: an answer the layout does not allow
     *     (e.g. no {@code config.json})
     * @throws ResidencyException kind {@code residency}: a mirror redirected, or its certificate
     *     missed the root's pins
     * @throws ConfigException a mirror served a document that does not verify: kind {@code
     *     malformed} (also larger than 1 MiB or truncated), {@code bad_signature}, {@code
     *     threshold_not_met}, {@code rollback} (older, or the same version with other bytes),
     *     {@code version_gap}, {@code expired}
     * @throws StorageException if the trust store cannot be read or written
     * @throws IllegalStateException if the agent is closed
     */
    @NotNull
    public ConfigRefresh refreshConfig() throws SyncException {
        return withHandle(NativeBridge::refreshConfig);
    }

    /**
     * Sets the signed-in account's country, which selects the approved region through the config,
     * and remembers it for that account ({@link #setAccount}). Items already queued for another
     * region are held when this returns ({@link #stats()} shows them at once, before any run)
     * until {@link #rehome()} or {@link #discardHeld()}; moving back makes them pending again.
     * The signed-in account stays as it is. While signed out it throws {@link AuthException}
     * kind {@code no_account} and changes nothing: a country belongs to an account.
     *
     * <p><b>Threading:</b> any thread (it does disk I/O).
     *
     * @param iso2 ISO 3166-1 alpha-2 code, any case (e.g. {@code "IN"})
     * @throws SyncException kind {@code invalid_argument} if it is not two ASCII letters
     * @throws AuthException kind {@code no_account} while signed out
     * @throws StorageException if it cannot be stored
     * @throws NullPointerException if {@code iso2} is null
     * @throws IllegalStateException if the agent is closed
     */
    public void setAccountCountry(@NotNull String iso2) throws SyncException {
        Objects.requireNonNull(iso2, "iso2");
        withHandle(h -> {
            NativeBridge.setAccountCountry(h, iso2);
            return null;
        });
    }

    /**
     * Signs {@code accountId} in (or, with {@code null}, signs out) and, if {@code iso2} is not
     * {@code null}, sets the account's country, in one step: every agent and process on the
     * database sees both change together. Call it whenever the device's account changes, and on
     * sign-out.
     *
     * <p>New items are stamped with the account (the database keeps a keyed hash of the id, not
     * the id). Items of another account are held when this returns ({@link #stats()} counts them
     * as held) and are never sent with this account's credentials; they become pending again when
     * their account is signed in again, or {@link #discardHeld()} deletes them. Items enqueued
     * before any account was set belong to the first account signed in.
     *
     * <p><b>Countries</b> belong to accounts: each account's is remembered (by the keyed hash),
     * and {@link #configInfo()} shows the signed-in account's. With {@code iso2 == null}, the
     * account signed in already keeps its country (call this at every app start); another
     * account gets the country it had when last signed in, or none: {@link #approvedRegion()}
     * is {@code null}, {@link #runOnce} throws {@link ResidencyException} kind {@code no_region}
     * and sends nothing, and its items wait until it is given a country. (The first account of
     * a queue that never had an account adopts the queue's country.)
     *
     * <p><b>Sign-out</b> ({@code accountId == null}): uploads stop and nothing is lost. {@link
     * #runOnce} and {@link #enqueue} / {@link #enqueueAll} throw {@link AuthException} kind
     * {@code no_account} until an account is signed in; the queue is kept, and no country is in
     * force (the account's is remembered for its next sign-in). A run in progress on
     * another thread stops at its next buffer ({@link RunReport.StopReason#ACCOUNT_CHANGED}), as
     * it does when another account is signed in.
     *
     * <p><b>Threading:</b> any thread (it does disk I/O), also from inside a {@link
     * CredentialProvider} or {@link RunListener} / {@link ProgressListener} of this agent.
     *
     * @param accountId the account's stable id (1 to 256 bytes of UTF-8, no control characters),
     *     or {@code null} to sign out
     * @param iso2 the account's country (ISO 3166-1 alpha-2, any case), or {@code null} for the
     *     account's own (see above); must be {@code null} with a sign-out
     * @throws SyncException kind {@code invalid_argument} for a bad id or country, or a country
     *     with a sign-out
     * @throws StorageException if it cannot be stored
     * @throws IllegalStateException if the agent is closed
     */
    public void setAccount(@Nullable String accountId, @Nullable String iso2) throws SyncException {
        withHandle(h -> {
            NativeBridge.setAccount(h, accountId, iso2);
            return null;
        });
    }

    /**
     * Sets the source of bearer tokens for services whose config declares {@code "auth":
     * "bearer"}, or removes it with {@code null} (runs that need a token then throw {@link
     * AuthException} kind {@code unauthorized}; anonymous services are unaffected). It belongs
     * to this {@code SyncAgent} only, in memory: set it after every {@link #open}. A run uses the
     * provider set when it started. The agent keeps a reference to {@code provider} until it is
     * replaced, removed or the agent is closed (and a run that uses it has ended).
     *
     * <p><b>Threading:</b> any thread. The provider is called on the thread of {@link #runOnce};
     * see {@link CredentialProvider} for what it may do.
     *
     * @param provider the provider, or {@code null}
     * @throws SyncException if the native call fails (kind {@code internal})
     * @throws IllegalStateException if the agent is closed
     */
    public void setCredentialProvider(@Nullable CredentialProvider provider) throws SyncException {
        withHandle(h -> {
            NativeBridge.setCredentialProvider(h, provider);
            return null;
        });
    }

    /**
     * Whether an account is signed in, as stored in the database now (every agent and process on
     * the file sees the same; {@link #setAccount} changes it).
     *
     * <p><b>Threading:</b> any thread.
     *
     * @return {@link AccountState#NEVER_SET}, {@link AccountState#SIGNED_OUT} or {@link
     *     AccountState#SIGNED_IN} ({@link AccountState#UNKNOWN} for a state a newer native library
     *     adds)
     * @throws StorageException if the database cannot be read
     * @throws IllegalStateException if the agent is closed
     */
    @NotNull
    public AccountState getAccountState() throws SyncException {
        return AccountState.fromNative(withHandle(NativeBridge::accountState));
    }

    /**
     * Whether an account is signed in: {@link #getAccountState()} is {@link
     * AccountState#SIGNED_IN}.
     *
     * <p><b>Threading:</b> any thread.
     *
     * @return {@code true} when an account is signed in
     * @throws StorageException if the database cannot be read
     * @throws IllegalStateException if the agent is closed
     */
    public boolean isSignedIn() throws SyncException {
        return getAccountState() == AccountState.SIGNED_IN;
    }

    /**
     * The region uploads go to.
     *
     * <p><b>Threading:</b> any thread.
     *
     * @return the region id, or {@code null} when no config is installed, no country is set, or
     *     the config maps the country to no region
     * @throws ConfigException kind {@code expired} if the config or root has expired; kind {@code
     *     root_mismatch} while the trust is not anchored ({@link ConfigInfo#isAnchored()})
     * @throws IllegalStateException if the agent is closed
     */
    @Nullable
    public String approvedRegion() throws SyncException {
        return withHandle(NativeBridge::approvedRegion);
    }

    /**
     * Adds a file to the upload queue. Durable when it returns: the item survives process death
     * and reboot. Works without an approved region (the item is stamped with one at the first
     * run that has one). The file is read at upload time; if it changes meanwhile the upload
     * restarts, never sending a torn mix.
     *
     * <p><b>Threading:</b> any thread, also while {@link #runOnce} runs on another thread.
     *
     * @param path absolute path of a readable regular file (not a symbolic link: never followed)
     * @param service the config's service name, e.g. {@code "backup"} (1 to 64 characters)
     * @param priority higher runs first
     * @return the item id
     * @throws SyncException kind {@code invalid_argument} (relative path, a symbolic link or not
     *     a regular file, bad service name, or a service the installed config does not offer;
     *     without a config any well-formed name is accepted) or {@code source_io} (the file
     *     cannot be read)
     * @throws AuthException kind {@code no_account} after a sign-out ({@link #setAccount})
     * @throws StorageException if the queue cannot be written
     * @throws NullPointerException if an argument is null
     * @throws IllegalStateException if the agent is closed
     */
    public long enqueue(@NotNull String path, @NotNull String service, int priority)
            throws SyncException {
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(service, "service");
        return withHandle(h -> NativeBridge.enqueue(h, path, service, priority));
    }

    /**
     * Adds many files in one transaction: all are queued, or none.
     *
     * <p><b>Threading:</b> any thread, also while {@link #runOnce} runs on another thread.
     *
     * @param paths absolute paths of readable regular files
     * @param service the config's service name
     * @param priority higher runs first
     * @return the item ids, in the order of {@code paths}
     * @throws SyncException as {@link #enqueue}
     * @throws NullPointerException if an argument or an element of {@code paths} is null
     * @throws IllegalStateException if the agent is closed
     */
    @NotNull
    public long[] enqueueAll(@NotNull String[] paths, @NotNull String service, int priority)
            throws SyncException {
        Objects.requireNonNull(paths, "paths");
        for (String p : paths) {
            Objects.requireNonNull(p, "paths contains null");
        }
        Objects.requireNonNull(service, "service");
        String[] copy = paths.clone();
        return withHandle(h -> NativeBridge.enqueueAll(h, copy, service, priority));
    }

    /**
     * Uploads due items of the approved region until none is due, {@code maxMillis} elapsed, or
     * {@link #cancel()} is called, reporting each item's events to {@code listener}. Failed items
     * are retried in later runs with backoff (each item is attempted at most once per run); their
     * failures are counted in the report and told to {@link RunListener#onItemFailed}, not
     * thrown. Only one run at a time per database (across agents and processes).
     *
     * <p><b>Scheduling:</b> {@link RunReport#getNextDueAt()} says when the next item is due;
     * schedule the next run for then (items waiting out a backoff count in {@link
     * RunReport#getRemaining()} but are not due yet).
     *
     * <p><b>Threading:</b> blocks; call from a background thread (e.g. a WorkManager worker),
     * never the main thread. {@code listener} is called on this same thread.
     *
     * <p><b>Blocking callbacks:</b> the listener and the {@link CredentialProvider} run
     * synchronously on this thread, and the run waits while one runs. {@link #cancel()} cannot cut
     * a callback short: it only asks the run to stop, which the run sees once the callback has
     * returned (then it winds down and this method returns, with {@link
     * RunReport.StopReason#CANCELLED} or the exception the cancel caused). The time budget is
     * likewise checked only between callbacks. So a callback that blocks for a minute makes this
     * method return a minute late, however early it was cancelled, and {@link #close()} waits as
     * long; keep callbacks short, or give them their own timeouts.
     *
     * @param maxMillis time budget in milliseconds (the current chunk may overrun it slightly)
     * @param listener the run's events, or {@code null}; if it throws, the run is cancelled and
     *     its exception is rethrown from here
     * @return what the run did
     * @throws ConfigException kind {@code no_config} or {@code expired}: uploads are off; kind
     *     {@code root_mismatch}: the trust is not anchored ({@link ConfigInfo#isAnchored()}) and
     *     the refresh the run made first did not verify it
     * @throws ResidencyException kind {@code no_region}: no region is approved for the account
     * @throws AuthException kind {@code no_account}: signed out ({@link #setAccount}); kind {@code
     *     unauthorized}: the service refused the token again after one refresh, or the {@link
     *     CredentialProvider} is missing, returned {@code null} or threw. The item in progress is
     *     left as it was (no attempt counted); items already uploaded stay uploaded.
     * @throws BusyException another run holds the queue (also for a {@code runOnce} nested in
     *     this agent's {@link CredentialProvider} or listener)
     * @throws StorageException if the queue cannot be read or written
     * @throws SyncException for other failures, e.g. kind {@code invalid_argument} for a negative
     *     {@code maxMillis}
     * @throws IllegalStateException if the agent is closed
     */
    @NotNull
    public RunReport runOnce(long maxMillis, @Nullable RunListener listener) throws SyncException {
        return withHandle(h -> NativeBridge.runOnce(h, maxMillis, listener, true));
    }

    /**
     * {@link #runOnce(long, RunListener)} with a progress-only listener (a lambda {@code (item,
     * sent, total) -> ...}): the same run, reporting only {@link ProgressListener#onProgress};
     * each item's completion ({@code sent == total}) is reported once.
     *
     * <p><b>Threading:</b> as {@link #runOnce(long, RunListener)}.
     *
     * @param maxMillis time budget in milliseconds
     * @param listener progress callback, or {@code null}; if it throws, the run is cancelled and
     *     its exception is rethrown from here
     * @return what the run did
     * @throws SyncException as {@link #runOnce(long, RunListener)}
     * @throws IllegalStateException if the agent is closed
     */
    @NotNull
    public RunReport runOnce(long maxMillis, @Nullable ProgressListener listener)
            throws SyncException {
        return withHandle(h -> NativeBridge.runOnce(h, maxMillis, listener, false));
    }

    /**
     * Asks a {@link #runOnce} in progress on another thread to stop soon (between reads of the
     * file being sent; a request waiting on the network ends at its timeout). A cancel while no
     * run is in progress has no effect on later runs. A no-op once the agent is closed.
     *
     * <p><b>Threading:</b> any thread; never blocks, not even while {@link #close()} waits.
     */
    public void cancel() {
        Lock read = lock.readLock();
        // tryLock barges past a waiting close(); it fails only while close() holds the write
        // lock, and then no run is in progress.
        if (!read.tryLock()) {
            return;
        }
        try {
            long h = handle.get();
            if (h != 0) {
                NativeBridge.cancel(h);
            }
        } catch (SyncException e) {
            throw new IllegalStateException("native cancel failed", e);
        } finally {
            read.unlock();
        }
    }

    /**
     * Counts queue items per state.
     *
     * <p><b>Threading:</b> any thread, also while {@link #runOnce} runs on another thread.
     *
     * @return a snapshot of the counters
     * @throws StorageException if the queue cannot be read
     * @throws IllegalStateException if the agent is closed
     */
    @NotNull
    public QueueStats stats() throws SyncException {
        return withHandle(NativeBridge::stats);
    }

    /**
     * One queued item: its state, attempts, confirmed bytes, region and account stamps, last error
     * and next attempt.
     *
     * <p><b>Threading:</b> any thread, also while {@link #runOnce} runs on another thread (and
     * from its listener).
     *
     * @param id the id {@link #enqueue} returned
     * @return the item as stored now, or {@code null} when it is no longer queued: confirmed by
     *     the server (its record is in {@link #audit}) or removed
     * @throws StorageException if the queue cannot be read
     * @throws IllegalStateException if the agent is closed
     */
    @Nullable
    public ItemInfo getItem(long id) throws SyncException {
        ItemInfo[] found = withHandle(h -> NativeBridge.item(h, id));
        return found.length == 0 ? null : found[0];
    }

    /**
     * Lists one page of queued items by id, optionally of one state. Confirmed items have left
     * the queue ({@link ItemState#DONE} lists nothing): read them with {@link #audit}.
     *
     * <p>To read them all, page by id: start with {@code afterId} 0 and pass the last id of each
     * page until a page is shorter than {@code limit}. Each page costs the same however large the
     * queue is (a photo library's first backup queues tens of thousands).
     *
     * <p>A method of its own rather than an overload of {@link #listItems(String, long, int)}:
     * with both, {@code listItems(null, 0, 100)} would no longer compile (ambiguous).
     *
     * <p><b>Threading:</b> any thread, also while {@link #runOnce} runs on another thread.
     *
     * @param state the state to list, or {@code null} for all; not {@link ItemState#UNKNOWN}
     * @param afterId list items with an id greater than this ({@code 0} for the first page)
     * @param limit maximum number of items (0 or more)
     * @return the items, oldest first (unmodifiable)
     * @throws IllegalArgumentException if {@code state} is {@link ItemState#UNKNOWN}, which names
     *     no state (it stands for one a newer native library adds)
     * @throws SyncException kind {@code invalid_argument} for a negative {@code afterId} or a
     *     negative limit
     * @throws StorageException if the queue cannot be read
     * @throws IllegalStateException if the agent is closed
     */
    @NotNull
    public List<ItemInfo> listItemsIn(@Nullable ItemState state, long afterId, int limit)
            throws SyncException {
        if (state == ItemState.UNKNOWN) {
            throw new IllegalArgumentException("ItemState.UNKNOWN names no state to list");
        }
        String name = state == null ? null : NativeNames.toNative(state);
        return unmodifiable(withHandle(h -> NativeBridge.listItems(h, name, afterId, limit)));
    }

    /**
     * Lists one page of queued items by id, optionally of one state named as text; otherwise as
     * {@link #listItemsIn}.
     *
     * <p><b>Threading:</b> any thread, also while {@link #runOnce} runs on another thread.
     *
     * @param state one of the {@code ItemInfo.STATE_*} names, or {@code null} for all
     * @param afterId list items with an id greater than this ({@code 0} for the first page)
     * @param limit maximum number of items (0 or more)
     * @return the items, oldest first (unmodifiable)
     * @throws SyncException kind {@code invalid_argument} for an unknown state, a negative
     *     {@code afterId} or a negative limit
     * @throws StorageException if the queue cannot be read
     * @throws IllegalStateException if the agent is closed
     * @deprecated use {@link #listItemsIn(ItemState, long, int)} (the state as an {@link
     *     ItemState}, like {@link ItemInfo#getItemState()}; the {@code STATE_*} names are
     *     deprecated too)
     */
    @Deprecated
    @NotNull
    public List<ItemInfo> listItems(@Nullable String state, long afterId, int limit)
            throws SyncException {
        return unmodifiable(withHandle(h -> NativeBridge.listItems(h, state, afterId, limit)));
    }

    /**
     * Revives every dead item ({@link ItemInfo#STATE_DEAD}): attempts reset and a fresh upload, at
     * the next run. Items stamped for a region that is no longer approved come back held, not
     * pending. Of several dead items of one file and service only the newest comes back, and none
     * whose file is queued again.
     *
     * <p><b>Threading:</b> any thread (it does disk I/O).
     *
     * @return the number of items revived
     * @throws StorageException if the queue cannot be written
     * @throws IllegalStateException if the agent is closed
     */
    public long retryDead() throws SyncException {
        return withHandle(NativeBridge::retryDead);
    }

    /**
     * Removes one item from the queue, whatever its state; nothing more of it is sent. If the
     * server holds part of it, the next run asks the server to delete that part.
     *
     * <p><b>Threading:</b> any thread (it does disk I/O), also while {@link #runOnce} runs on
     * another thread.
     *
     * @param id the id {@link #enqueue} returned
     * @return {@code true} if it was removed, {@code false} if it was no longer queued (already
     *     confirmed, or removed before)
     * @throws StorageException if the queue cannot be written
     * @throws IllegalStateException if the agent is closed
     */
    public boolean remove(long id) throws SyncException {
        return withHandle(h -> NativeBridge.remove(h, id));
    }

    /**
     * The native library's version, e.g. {@code "0.1.0"} (the crate's version). Loads the library
     * if needed; needs no agent.
     *
     * <p><b>Threading:</b> any thread.
     *
     * @return the version
     */
    @NotNull
    public static String version() {
        try {
            return NativeBridge.version();
        } catch (SyncException e) {
            throw new IllegalStateException("native version() failed", e);
        }
    }

    private static <T> List<T> unmodifiable(T[] items) {
        return Collections.unmodifiableList(Arrays.asList(items));
    }

    /**
     * Reads the audit trail of confirmed uploads, oldest first.
     *
     * <p><b>Threading:</b> any thread.
     *
     * @param afterId return records with an id greater than this ({@code 0} for the first page;
     *     then the last id of the previous page)
     * @param limit maximum number of records (0 or more)
     * @return the records (unmodifiable)
     * @throws SyncException kind {@code invalid_argument} for a negative {@code afterId} or a
     *     negative limit
     * @throws StorageException if the trail cannot be read
     * @throws IllegalStateException if the agent is closed
     */
    @NotNull
    public List<AuditRecord> audit(long afterId, int limit) throws SyncException {
        return unmodifiable(withHandle(h -> NativeBridge.audit(h, afterId, limit)));
    }

    /**
     * Restamps held items (queued for a previous region) to the approved region, so they upload
     * there. Call only with the user's explicit consent: it moves their data to another region.
     *
     * <p><b>Threading:</b> any thread (it does disk I/O).
     *
     * @return the number of items restamped
     * @throws ResidencyException kind {@code no_region} if no region is approved
     * @throws ConfigException kind {@code expired} if the config expired
     * @throws StorageException if the queue cannot be written
     * @throws IllegalStateException if the agent is closed
     */
    public long rehome() throws SyncException {
        return withHandle(NativeBridge::rehome);
    }

    /**
     * {@link #rehome()} bound to the user's answer: restamps held items only if {@code
     * expectedRegion} (the region named in the question, e.g. from {@link #approvedRegion()}) is
     * still the approved region. Another agent or process may have moved the account since the
     * user was asked; then nothing changes and this throws.
     *
     * <p><b>Threading:</b> any thread (it does disk I/O).
     *
     * @param expectedRegion the region id the user agreed to move the items to
     * @return the number of items restamped
     * @throws ResidencyException kind {@code residency} if another region is approved now, {@code
     *     no_region} if none is
     * @throws ConfigException kind {@code expired} if the config expired
     * @throws StorageException if the queue cannot be written
     * @throws NullPointerException if {@code expectedRegion} is null
     * @throws IllegalStateException if the agent is closed
     */
    public long rehome(@NotNull String expectedRegion) throws SyncException {
        Objects.requireNonNull(expectedRegion, "expectedRegion");
        return withHandle(h -> NativeBridge.rehomeTo(h, expectedRegion));
    }

    /**
     * Deletes held items from the queue; nothing is sent anywhere.
     *
     * <p><b>Threading:</b> any thread (it does disk I/O).
     *
     * @return the number of items deleted
     * @throws StorageException if the queue cannot be written
     * @throws IllegalStateException if the agent is closed
     */
    public long discardHeld() throws SyncException {
        return withHandle(NativeBridge::discardHeld);
    }

    /**
     * How many days a finished upload stays in the audit trail ({@link #audit}). The default, 400,
     * keeps a year of records plus a margin for an annual residency review. The value is stored in
     * the database: every agent and process on the file uses the same one.
     *
     * <p><b>Threading:</b> any thread (it does disk I/O).
     *
     * @return the retention in days
     * @throws StorageException if the database cannot be read
     * @throws IllegalStateException if the agent is closed
     */
    public int getAuditRetentionDays() throws SyncException {
        return withHandle(NativeBridge::auditRetentionDays);
    }

    /**
     * Sets how many days a finished upload stays in the audit trail, for every agent and process on
     * the database, and prunes the rows that makes due (as {@link #pruneAudit()}).
     *
     * <p><b>Threading:</b> any thread (it does disk I/O).
     *
     * @param days 1 to 36500
     * @return the number of audit rows pruned
     * @throws SyncException kind {@code invalid_argument} if {@code days} is out of range (nothing
     *     changes)
     * @throws StorageException if the database cannot be written
     * @throws IllegalStateException if the agent is closed
     */
    public long setAuditRetentionDays(int days) throws SyncException {
        return withHandle(h -> NativeBridge.setAuditRetentionDays(h, days));
    }

    /**
     * Deletes audit rows older than the retention, in short transactions that never keep an {@link
     * #enqueue} waiting for long, at most 10,000 rows per call (call again while it returns that
     * many). Every {@link #runOnce} already does this at its end; call it to prune without a run.
     *
     * <p><b>Threading:</b> any thread (it does disk I/O).
     *
     * @return the number of audit rows pruned
     * @throws StorageException if the database cannot be written
     * @throws IllegalStateException if the agent is closed
     */
    public long pruneAudit() throws SyncException {
        return withHandle(NativeBridge::pruneAudit);
    }

    /**
     * Closes the database and frees the native agent. Cancels a run in progress, then waits for
     * calls in progress on other threads to return. Idempotent: later calls do nothing. An agent
     * dropped without it is freed once the garbage collector finds it unreachable; call it anyway,
     * as collection may come late.
     *
     * <p><b>Threading:</b> any thread, but not from inside a listener or {@link
     * CredentialProvider} of this agent (that would wait for itself; it throws {@link
     * IllegalStateException} instead).
     *
     * @throws IllegalStateException if called from inside a call on this agent, or if the native
     *     library reports a bug while closing
     */
    @Override
    public void close() {
        if (lock.getReadHoldCount() > 0) {
            throw new IllegalStateException("close() called from inside a call on this SyncAgent");
        }
        cancel();
        Lock write = lock.writeLock();
        write.lock();
        try {
            long h = handle.getAndSet(0);
            if (h != 0) {
                // Before the free: the cleanup then never frees this handle a second time.
                cleanup.deregister();
                NativeBridge.close(h);
            }
        } catch (SyncException e) {
            throw new IllegalStateException("native close failed", e);
        } finally {
            write.unlock();
        }
    }

    /**
     * Whether {@link #close()} has been called.
     *
     * <p><b>Threading:</b> any thread; never blocks.
     *
     * @return {@code true} once closed
     */
    public boolean isClosed() {
        return handle.get() == 0;
    }
}
