import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.Executable;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

/**
 * The R8/ProGuard keep-rule check of scripts/android-java-check.sh (run with `java
 * JniKeepCheck.java`, JDK 11 or newer).
 *
 * <pre>
 * java8lib CT_SYM OUT_JAR
 *     The Java 8 API (what `javac --release 8` compiles against) as a library jar for ProGuard
 *     6.2, which cannot read the JDK 17 class files: java.base's signature files of release 8
 *     from the JDK's lib/ct.sym, their class file version lowered to 52.
 * check REPO CLASSES OUT_JAR MAPPING
 *     Parses, from REPO/src/ffi/jni/*.rs and REPO/src/error.rs, every name the native code
 *     looks up (see `names`), resolves them against the compiled classes in CLASSES (the API
 *     and the app fixture), and fails unless each class, constructor and method, and each
 *     implementation of a called interface method in CLASSES, is still in OUT_JAR (the shrunk,
 *     obfuscated output) under its own name. MAPPING (-printmapping) explains a failure.
 * </pre>
 */
public final class JniKeepCheck {
    private static final String PKG = "com/miui/cloudsync/";
    /** Descriptor constants that name no method of ours (java.lang.Throwable's getters). */
    private static final Set<String> FOREIGN = new HashSet<>(List.of("STRING_GETTER_SIG"));

    private final List<String> errors = new ArrayList<>();

    public static void main(String[] a) throws Exception {
        if (a.length == 3 && a[0].equals("java8lib")) {
            java8lib(Paths.get(a[1]), Paths.get(a[2]));
        } else if (a.length == 5 && a[0].equals("check")) {
            JniKeepCheck c = new JniKeepCheck();
            c.check(Paths.get(a[1]), Paths.get(a[2]), Paths.get(a[3]), Paths.get(a[4]));
            if (!c.errors.isEmpty()) {
                c.errors.forEach(e -> System.err.println("FAIL: " + e));
                System.exit(1);
            }
        } else {
            System.err.println("usage: JniKeepCheck java8lib CT_SYM OUT_JAR"
                    + " | check REPO CLASSES OUT_JAR MAPPING");
            System.exit(2);
        }
    }

    static void java8lib(Path ctSym, Path out) throws IOException {
        Pattern sig = Pattern.compile("([0-9A-Z]+)/java\\.base/(.+)\\.sig");
        Set<String> seen = new HashSet<>();
        try (ZipFile z = new ZipFile(ctSym.toFile());
                OutputStream os = Files.newOutputStream(out);
                ZipOutputStream zo = new ZipOutputStream(os)) {
            for (Enumeration<? extends ZipEntry> e = z.entries(); e.hasMoreElements(); ) {
                ZipEntry entry = e.nextElement();
                Matcher m = sig.matcher(entry.getName());
                if (!m.matches() || m.group(1).indexOf('8') < 0 || !seen.add(m.group(2))) {
                    continue;
                }
                byte[] b;
                try (InputStream in = z.getInputStream(entry)) {
                    b = in.readAllBytes();
                }
                b[6] = 0;
                b[7] = 52; // Java 8
                zo.putNextEntry(new ZipEntry(m.group(2) + ".class"));
                zo.write(b);
                zo.closeEntry();
            }
        }
        if (seen.size() < 1000) {
            throw new IOException("only " + seen.size() + " release 8 classes in " + ctSym);
        }
    }

    /** What the native code looks up by name. */
    static final class Names {
        final Set<String> classes = new TreeSet<>();
        /** class -> constructor descriptors. */
        final Map<String, Set<String>> ctors = new LinkedHashMap<>();
        /** "name descriptor" of methods called on objects (owner found from the classes). */
        final Set<String> methods = new LinkedHashSet<>();
        /** class -> native method names (Java_<class>_<name>). */
        final Map<String, Set<String>> natives = new LinkedHashMap<>();
    }

    private static String read(Path p) throws IOException {
        // Comments may quote signatures; only code counts.
        return Files.readAllLines(p, StandardCharsets.UTF_8).stream()
                .filter(l -> !l.trim().startsWith("//"))
                .collect(Collectors.joining("\n"));
    }

    /**
     * The naming rules the Rust side follows (a descriptor nobody can attribute fails the check):
     * every {@code "com/miui/cloudsync/X"} literal is a class; {@code const X_CTOR} is a
     * constructor of {@code const X_CLASS} ({@code EXCEPTION_CTOR}: of every exception class named
     * in error.rs); {@code const X_METHOD} is called with {@code const X_SIG}; a method-name
     * literal directly followed by a descriptor literal ({@code "onItemDone", "(JJ)V"}) is a call.
     */
    Names names(Path repo) throws IOException {
        Names n = new Names();
        List<Path> files;
        try (Stream<Path> s = Files.list(repo.resolve("src/ffi/jni"))) {
            files = s.filter(p -> p.toString().endsWith(".rs")).sorted().collect(Collectors.toList());
        }
        StringBuilder all = new StringBuilder();
        for (Path f : files) {
            all.append(read(f)).append('\n');
        }
        String jni = all.toString();
        String errorRs = read(repo.resolve("src/error.rs"));
        String text = jni + "\n" + errorRs;

        Map<String, String> consts = new LinkedHashMap<>();
        Matcher m = Pattern.compile("const\\s+(\\w+)\\s*:\\s*&str\\s*=\\s*\"((?:[^\"\\\\]|\\\\.)*)\"\\s*;")
                .matcher(text);
        while (m.find()) {
            consts.put(m.group(1), m.group(2));
        }
        Pattern cls = Pattern.compile("\"(" + PKG + "[\\w$]+)\"");
        for (m = cls.matcher(text); m.find(); ) {
            n.classes.add(m.group(1));
        }
        Set<String> exceptions = new TreeSet<>();
        for (m = cls.matcher(errorRs); m.find(); ) {
            exceptions.add(m.group(1));
        }
        Set<String> attributed = new HashSet<>();
        for (Map.Entry<String, String> c : consts.entrySet()) {
            String name = c.getKey();
            if (name.endsWith("_CTOR")) {
                String prefix = name.substring(0, name.length() - "_CTOR".length());
                Set<String> owners = new TreeSet<>();
                if (prefix.equals("EXCEPTION")) {
                    owners.addAll(exceptions);
                } else if (consts.containsKey(prefix + "_CLASS")) {
                    owners.add(consts.get(prefix + "_CLASS"));
                } else {
                    errors.add(name + " has no " + prefix + "_CLASS");
                }
                for (String o : owners) {
                    n.ctors.computeIfAbsent(o, k -> new LinkedHashSet<>()).add(c.getValue());
                }
                attributed.add(c.getValue());
            } else if (name.endsWith("_METHOD")) {
                String prefix = name.substring(0, name.length() - "_METHOD".length());
                String sig = consts.get(prefix + "_SIG");
                if (sig == null) {
                    errors.add(name + " has no " + prefix + "_SIG");
                } else {
                    n.methods.add(c.getValue() + " " + sig);
                    attributed.add(sig);
                }
            } else if (FOREIGN.contains(name)) {
                attributed.add(c.getValue());
            }
        }
        String desc = "\\([^\"()]*\\)[^\"()]+";
        m = Pattern.compile("\"([A-Za-z_]\\w*)\"\\s*,\\s*\"(" + desc + ")\"").matcher(jni);
        while (m.find()) {
            n.methods.add(m.group(1) + " " + m.group(2));
            attributed.add(m.group(2));
        }
        for (m = Pattern.compile("\"(" + desc + ")\"").matcher(text); m.find(); ) {
            if (!attributed.contains(m.group(1))) {
                errors.add("descriptor " + m.group(1) + " is used by no constructor or method the"
                        + " check can tell (name it X_CTOR next to X_CLASS, X_SIG next to X_METHOD,"
                        + " or put the method name literal right before it)");
            }
        }
        m = Pattern.compile("\\bJava_" + PKG.replace('/', '_') + "([A-Za-z0-9]+)_([A-Za-z0-9]+)\\b")
                .matcher(jni);
        while (m.find()) {
            n.natives.computeIfAbsent(PKG + m.group(1), k -> new TreeSet<>()).add(m.group(2));
        }
        // The entry points declared with native! (src/ffi/jni/entry.rs): `fn <javaName>(` inside a
        // `native! { ... }` block exports Java_com_miui_cloudsync_NativeBridge_<javaName>.
        for (m = Pattern.compile("\\bnative!\\s*\\{").matcher(jni); m.find(); ) {
            int depth = 1;
            int end = m.end();
            while (end < jni.length() && depth > 0) {
                char ch = jni.charAt(end++);
                depth += ch == '{' ? 1 : ch == '}' ? -1 : 0;
            }
            Matcher f = Pattern.compile("\\bfn\\s+([A-Za-z0-9]+)\\s*\\(").matcher(jni.substring(m.end(), end));
            while (f.find()) {
                n.natives.computeIfAbsent(PKG + "NativeBridge", k -> new TreeSet<>()).add(f.group(1));
            }
        }
        n.classes.addAll(n.ctors.keySet());
        n.classes.addAll(n.natives.keySet());
        return n;
    }

    static String descriptor(Class<?> c) {
        if (c.isArray()) {
            return c.getName().replace('.', '/');
        }
        if (!c.isPrimitive()) {
            return "L" + c.getName().replace('.', '/') + ";";
        }
        switch (c.getName()) {
            case "boolean": return "Z";
            case "byte": return "B";
            case "char": return "C";
            case "short": return "S";
            case "int": return "I";
            case "long": return "J";
            case "float": return "F";
            case "double": return "D";
            default: return "V";
        }
    }

    static String descriptor(Executable e) {
        StringBuilder b = new StringBuilder("(");
        for (Class<?> p : e.getParameterTypes()) {
            b.append(descriptor(p));
        }
        b.append(')');
        b.append(e instanceof Method ? descriptor(((Method) e).getReturnType()) : "V");
        return b.toString();
    }

    private static List<String> classNames(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(p -> p.toString().endsWith(".class"))
                    .map(p -> dir.relativize(p).toString().replace('\\', '/'))
                    .map(p -> p.substring(0, p.length() - ".class".length()).replace('/', '.'))
                    .sorted()
                    .collect(Collectors.toList());
        }
    }

    private static Class<?> load(ClassLoader l, String name) {
        try {
            return Class.forName(name.replace('/', '.'), false, l);
        } catch (ClassNotFoundException | LinkageError e) {
            return null;
        }
    }

    private static boolean declares(Class<?> c, String name, String desc) {
        for (Method m : c.getDeclaredMethods()) {
            if (m.getName().equals(name) && descriptor(m).equals(desc)) {
                return true;
            }
        }
        return false;
    }

    private static boolean declaresCtor(Class<?> c, String desc) {
        for (Constructor<?> k : c.getDeclaredConstructors()) {
            if (descriptor(k).equals(desc)) {
                return true;
            }
        }
        return false;
    }

    /** "orig -> new" for classes, from a ProGuard mapping (explains a failure). */
    private static Map<String, String> mapping(Path p) throws IOException {
        Map<String, String> out = new LinkedHashMap<>();
        for (String l : Files.readAllLines(p, StandardCharsets.UTF_8)) {
            Matcher m = Pattern.compile("^(\\S+) -> (\\S+):$").matcher(l);
            if (m.matches()) {
                out.put(m.group(1), m.group(2));
            }
        }
        return out;
    }

    void check(Path repo, Path classes, Path outJar, Path mappingFile) throws IOException {
        Names n = names(repo);
        if (n.classes.isEmpty() || n.ctors.isEmpty() || n.methods.isEmpty() || n.natives.isEmpty()) {
            errors.add("parsed nothing from " + repo.resolve("src/ffi/jni") + ": check the patterns");
            return;
        }
        Map<String, String> mapped = mapping(mappingFile);
        try (URLClassLoader in = new URLClassLoader(new URL[] {classes.toUri().toURL()},
                        ClassLoader.getPlatformClassLoader());
                URLClassLoader out = new URLClassLoader(new URL[] {outJar.toUri().toURL()},
                        ClassLoader.getPlatformClassLoader())) {
            List<Class<?>> inputs = new ArrayList<>();
            for (String c : classNames(classes)) {
                Class<?> k = load(in, c);
                if (k == null) {
                    errors.add("cannot load input class " + c);
                } else {
                    inputs.add(k);
                }
            }
            // What must survive: class -> "name desc" members ("<init> desc" for constructors).
            // Classes the native code names keep their names too; a class whose methods are only
            // called on an object (a listener implementation) may be renamed, its methods not.
            Map<String, Set<String>> required = new LinkedHashMap<>();
            Set<String> named = new HashSet<>();
            for (String c : n.classes) {
                Class<?> k = load(in, c);
                if (k == null) {
                    errors.add("native code names " + c + ", which is not in the Java API");
                    continue;
                }
                required.computeIfAbsent(k.getName(), x -> new TreeSet<>());
                named.add(k.getName());
            }
            n.ctors.forEach((c, descs) -> {
                Class<?> k = load(in, c);
                for (String d : descs) {
                    if (k != null && !declaresCtor(k, d)) {
                        errors.add("native code builds " + c + d + ", which has no such constructor");
                    } else if (k != null) {
                        required.get(k.getName()).add("<init> " + d);
                    }
                }
            });
            Set<String> impls = new TreeSet<>();
            for (String nm : n.methods) {
                String[] p = nm.split(" ");
                List<Class<?>> owners = new ArrayList<>();
                for (Class<?> k : inputs) {
                    if (k.getName().startsWith(PKG.replace('/', '.')) && declares(k, p[0], p[1])) {
                        owners.add(k);
                    }
                }
                if (owners.isEmpty()) {
                    errors.add("native code calls " + p[0] + p[1] + ", which no class of the API declares");
                }
                for (Class<?> o : owners) {
                    for (Class<?> k : inputs) {
                        if (o.isAssignableFrom(k) && declares(k, p[0], p[1])) {
                            required.computeIfAbsent(k.getName(), x -> new TreeSet<>()).add(nm);
                            if (!k.getName().startsWith(PKG.replace('/', '.'))) {
                                impls.add(k.getName() + "." + p[0]);
                            }
                        }
                    }
                }
            }
            n.natives.forEach((c, names) -> {
                Class<?> k = load(in, c);
                for (String name : names) {
                    boolean ok = false;
                    for (Method m : k == null ? new Method[0] : k.getDeclaredMethods()) {
                        ok |= m.getName().equals(name) && Modifier.isNative(m.getModifiers());
                    }
                    if (!ok) {
                        errors.add("Java_" + c.replace('/', '_') + "_" + name + " has no native"
                                + " method " + name + " in " + c);
                    } else {
                        required.computeIfAbsent(k.getName(), x -> new TreeSet<>()).add(name + " native");
                    }
                }
            });
            if (impls.isEmpty()) {
                errors.add("the fixture implements none of the listener methods native code calls");
            }

            int members = 0;
            for (Map.Entry<String, Set<String>> r : required.entrySet()) {
                String c = r.getKey();
                String to = mapped.get(c);
                if (named.contains(c) && to != null && !to.equals(c)) {
                    errors.add("class " + c + " was renamed to " + to);
                    continue;
                }
                Class<?> k = load(out, to == null ? c : to);
                if (k == null) {
                    errors.add("class " + c + " was removed");
                    continue;
                }
                for (String member : r.getValue()) {
                    members++;
                    String[] p = member.split(" ");
                    boolean kept;
                    if (p[0].equals("<init>")) {
                        kept = declaresCtor(k, p[1]);
                    } else if (p[1].equals("native")) {
                        kept = false;
                        for (Method m : k.getDeclaredMethods()) {
                            kept |= m.getName().equals(p[0]) && Modifier.isNative(m.getModifiers());
                        }
                    } else {
                        kept = declares(k, p[0], p[1]);
                    }
                    if (!kept) {
                        errors.add(c + (c.equals(k.getName()) ? "" : " (now " + k.getName() + ")")
                                + ": " + member + " was removed or renamed (see the mapping)");
                    }
                }
            }
            if (errors.isEmpty()) {
                System.out.println("kept under their names: " + required.size() + " classes, "
                        + members + " members (" + n.ctors.values().stream().mapToInt(Set::size).sum()
                        + " constructors, " + n.methods.size() + " methods called on objects and "
                        + impls.size() + " app implementations of them, "
                        + n.natives.values().stream().mapToInt(Set::size).sum() + " native methods)");
            }
        }
    }
}
