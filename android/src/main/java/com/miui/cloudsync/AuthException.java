package com.miui.cloudsync;

/**
 * The backup service answered 401 or 403: the account's credentials are missing, expired or not
 * allowed for this service. The run stopped without counting an attempt against any item;
 * refresh the credentials and run again.
 *
 * <p>Kinds ({@link #getKind()}): {@code unauthorized}.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public class AuthException extends SyncException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates an exception. Native code uses this constructor (keep it in {@code
     * consumer-rules.pro}); apps may use it in tests.
     *
     * @param kind the stable kind name
     * @param code the stable numeric code of the kind
     * @param message a human-readable description without personal data
     */
    public AuthException(String kind, int code, String message) {
        super(kind, code, message);
    }
}
