package com.miui.cloudsync;

import java.util.Locale;
import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * The Java constant of a name from the native tables ({@code src/codes.rs}): each enum there has a
 * stable snake_case name per variant, and the Java constant is that name in upper case. Names this
 * version does not know (a newer native library) map to the enum's {@code UNKNOWN}, so an older
 * app never breaks; the other way, a constant's native name is its name in lower case. The only
 * mapping: there is no second, hand-written table on either side.
 */
final class NativeNames {
    private NativeNames() {}

    /**
     * @param type the enum class
     * @param name the native snake_case name, or {@code null}
     * @param unknown the constant for a name this version does not know (and for {@code null})
     * @return the constant named {@code name} in upper case, or {@code unknown}
     */
    @NotNull
    static <E extends Enum<E>> E toEnum(
            @NotNull Class<E> type, @Nullable String name, @NotNull E unknown) {
        if (name == null || name.isEmpty()) {
            return unknown;
        }
        try {
            return Enum.valueOf(type, name.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            return unknown;
        }
    }

    /**
     * @param constant a constant other than the enum's {@code UNKNOWN}
     * @return its native snake_case name: the constant's name in lower case
     */
    @NotNull
    static String toNative(@NotNull Enum<?> constant) {
        return constant.name().toLowerCase(Locale.ROOT);
    }
}
