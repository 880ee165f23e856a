#!/usr/bin/env python3
"""Checks the Android backup rules shipped in android/src/main/res/xml/ (issue 21).

The app references them from its manifest:
  android:dataExtractionRules="@xml/cloudsync_data_extraction_rules"   (Android 12+)
  android:fullBackupContent="@xml/cloudsync_backup_rules"              (Android 11 and older)

Checked (Python 3 standard library only, no Android SDK):
  - each file parses and has the root element Android expects (<data-extraction-rules>,
    <full-backup-content>); the data extraction rules have one <cloud-backup> and one
    <device-transfer> section and nothing else;
  - every section (cloud-backup, device-transfer, full-backup-content) excludes cloudsync.db and
    its -wal, -shm, -journal and .lock files in domain "database" and in domain "file";
  - no <include> anywhere (one include makes its section back up only what is included, which
    would drop the app's other data), no element but <exclude>;
  - each <exclude> has a domain Android knows (root, file, database, sharedpref, external,
    device_root, device_file, device_database, device_sharedpref), a path, no ".." or "//" in it
    (Android skips such a rule without a word), and no attribute but domain and path (Android's
    parser refuses the whole file otherwise);
  - each file's comment names its own manifest reference (@xml/<file name>).
The parser rules mirror android.app.backup.FullBackup.BackupScheme (AOSP).

usage: scripts/backup-rules-check.py              check the two files (from anywhere)
       scripts/backup-rules-check.py --self-test  broken rules in memory must be refused
"""

import os
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RES_XML = os.path.join("android", "src", "main", "res", "xml")

DB = "cloudsync.db"
# The database, its SQLite sidecars (WAL mode: -wal and -shm; -journal while a rollback journal
# exists, e.g. before the switch to WAL) and the lock file the library keeps beside it.
NAMES = (DB, DB + "-wal", DB + "-shm", DB + "-journal", DB + ".lock")
# getDatabasePath() and getFilesDir(): where an app might keep the database instead of
# getNoBackupFilesDir().
REQUIRED_DOMAINS = ("database", "file")
# FullBackup.BackupScheme.getDirectoryForCriteriaDomain: the same for both file kinds.
VALID_DOMAINS = (
    "root", "file", "database", "sharedpref", "external",
    "device_root", "device_file", "device_database", "device_sharedpref",
)
DATA_EXTRACTION = "data-extraction-rules"
FULL_BACKUP = "full-backup-content"
DATA_EXTRACTION_SECTIONS = ("cloud-backup", "device-transfer")

# (file name, root element, manifest attribute)
FILES = (
    ("cloudsync_data_extraction_rules.xml", DATA_EXTRACTION, "android:dataExtractionRules"),
    ("cloudsync_backup_rules.xml", FULL_BACKUP, "android:fullBackupContent"),
)


def check_rules(data, name, root_tag, manifest_attr=None):
    """Checks one rules file. Returns (errors, sections, excludes)."""
    errors = []
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        return ["%s: not well-formed XML: %s" % (name, e)], 0, 0
    if root.tag != root_tag:
        return ["%s: root element is <%s>, expected <%s>" % (name, root.tag, root_tag)], 0, 0

    if manifest_attr is not None:
        ref = '%s="@xml/%s"' % (manifest_attr, os.path.splitext(name)[0])
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if ref not in text:
            errors.append("%s: its comment does not tell the app to set %s" % (name, ref))

    if root_tag == DATA_EXTRACTION:
        sections = []
        for child in root:
            if child.tag in DATA_EXTRACTION_SECTIONS:
                if any(tag == child.tag for tag, _ in sections):
                    errors.append("%s: more than one <%s> section" % (name, child.tag))
                sections.append((child.tag, child))
            else:
                errors.append("%s: unexpected <%s> in <%s> (only %s)" % (
                    name, child.tag, root_tag,
                    " and ".join("<%s>" % s for s in DATA_EXTRACTION_SECTIONS)))
        for required in DATA_EXTRACTION_SECTIONS:
            if not any(tag == required for tag, _ in sections):
                errors.append("%s: no <%s> section (Android 12+ would back up or transfer "
                              "everything there)" % (name, required))
    else:
        sections = [(root_tag, root)]

    excludes = 0
    for label, section in sections:
        where = "%s <%s>" % (name, label)
        seen = set()
        for el in section.iter():
            if el is section:
                continue
            if el.tag == "include":
                errors.append("%s: has an <include domain=%r path=%r>: with any <include> only "
                              "included files are backed up (the app's other data would be "
                              "dropped); use <exclude> only"
                              % (where, el.get("domain"), el.get("path")))
                continue
            if el.tag != "exclude":
                errors.append("%s: unexpected <%s>: Android accepts only <include> and <exclude> "
                              "and refuses the whole file otherwise" % (where, el.tag))
                continue
            extra = sorted(a for a in el.attrib if a not in ("domain", "path"))
            if extra:
                errors.append("%s: <exclude> with attributes %s: Android allows only domain and "
                              "path and refuses the whole file otherwise" % (where, extra))
            domain, path = el.get("domain"), el.get("path")
            if domain not in VALID_DOMAINS:
                errors.append("%s: <exclude> with domain %r, not one of Android's domains (%s)"
                              % (where, domain, ", ".join(VALID_DOMAINS)))
                continue
            if not path:
                errors.append("%s: <exclude domain=%r> without a path excludes the whole domain"
                              % (where, domain))
                continue
            if ".." in path or "//" in path:
                errors.append("%s: <exclude> path %r contains '..' or '//': Android skips it"
                              % (where, path))
                continue
            seen.add((domain, path))
            excludes += 1
        missing = ["%s/%s" % (d, n) for d in REQUIRED_DOMAINS for n in NAMES
                   if (d, n) not in seen]
        if missing:
            errors.append("%s: does not exclude %s" % (where, ", ".join(missing)))
    return errors, len(sections), excludes


def check_files():
    errors, sections, excludes = [], 0, 0
    for name, root_tag, attr in FILES:
        path = os.path.join(ROOT, RES_XML, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            errors.append("%s: cannot read: %s" % (os.path.join(RES_XML, name), e))
            continue
        e, s, x = check_rules(data, name, root_tag, attr)
        errors += e
        sections += s
        excludes += x
    if errors:
        for e in errors:
            print("backup rules: FAIL: " + e, file=sys.stderr)
        print("backup rules: %d problem(s) in %s" % (len(errors), RES_XML), file=sys.stderr)
        return 1
    print("backup rules: %d files, %d sections, %d excludes ok" % (len(FILES), sections, excludes))
    return 0


# ---- self-test: small rule files in memory, each broken one way ----

def _excludes(indent, skip=()):
    return "".join('%s<exclude domain="%s" path="%s"/>\n' % (indent, d, n)
                   for d in REQUIRED_DOMAINS for n in NAMES if (d, n) not in skip)


def _data_extraction(cloud_extra="", transfer_extra="", transfer_skip=(), sections=None):
    body = {
        "cloud-backup": _excludes("    ") + cloud_extra,
        "device-transfer": _excludes("    ", transfer_skip) + transfer_extra,
    }
    return ("<?xml version='1.0' encoding='utf-8'?>\n<data-extraction-rules>\n%s"
            "</data-extraction-rules>\n" % "".join(
                "  <%s>\n%s  </%s>\n" % (s, body[s], s)
                for s in (sections or DATA_EXTRACTION_SECTIONS)))


def _full_backup(extra="", skip=()):
    return ("<?xml version='1.0' encoding='utf-8'?>\n<full-backup-content>\n%s%s"
            "</full-backup-content>\n" % (_excludes("  ", skip), extra))


def self_test():
    der, fbc = DATA_EXTRACTION, FULL_BACKUP
    # (what, text, root element, expected message; None: must pass)
    cases = [
        ("good data extraction rules", _data_extraction(), der, None),
        ("good full backup rules", _full_backup(), fbc, None),
        ("device-transfer without the -wal exclude",
         _data_extraction(transfer_skip=[("database", DB + "-wal")]), der,
         "<device-transfer>: does not exclude database/cloudsync.db-wal"),
        ("full backup without the file-domain .lock exclude",
         _full_backup(skip=[("file", DB + ".lock")]), fbc,
         "<full-backup-content>: does not exclude file/cloudsync.db.lock"),
        ("an <include> in cloud-backup",
         _data_extraction(cloud_extra='    <include domain="file" path="photos"/>\n'), der,
         "has an <include domain='file' path='photos'>"),
        ("an <include> in full-backup-content",
         _full_backup('  <include domain="sharedpref" path="."/>\n'), fbc,
         "only included files are backed up"),
        ("unparseable XML", _full_backup().replace("</full-backup-content>", "</full-backup"),
         fbc, "not well-formed XML"),
        ("wrong root element", _full_backup(), der,
         "root element is <full-backup-content>, expected <data-extraction-rules>"),
        ("no device-transfer section", _data_extraction(sections=["cloud-backup"]), der,
         "no <device-transfer> section"),
        ("an unknown domain",
         _full_backup('  <exclude domain="databases" path="x.db"/>\n'), fbc,
         "with domain 'databases', not one of Android's domains"),
        ("an extra attribute on <exclude>",
         _data_extraction(transfer_extra='    <exclude domain="file" path="x" '
                          'xmlns:tools="http://schemas.android.com/tools" tools:ignore="X"/>\n'),
         der, "Android allows only domain and path"),
        ("an exclude without a path", _full_backup('  <exclude domain="database"/>\n'), fbc,
         "without a path excludes the whole domain"),
        ("a path with '..'", _full_backup('  <exclude domain="file" path="../x"/>\n'), fbc,
         "contains '..' or '//'"),
        ("an unknown element", _full_backup('  <exlude domain="file" path="x"/>\n'), fbc,
         "unexpected <exlude>"),
    ]
    passed = failed = 0
    for what, text, root_tag, expected in cases:
        errors, _, _ = check_rules(text.encode("utf-8"), "test.xml", root_tag)
        if expected is None:
            ok = not errors
            detail = "refused: %s" % errors
        else:
            ok = any(expected in e for e in errors)
            detail = "expected %r, got %s" % (expected, errors or "no error")
        if ok:
            passed += 1
        else:
            failed += 1
            print("backup rules self-test: FAIL: %s: %s" % (what, detail), file=sys.stderr)
    print("backup rules self-test: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    if argv:
        print(__doc__.strip().split("\n\n")[-1], file=sys.stderr)
        return 2
    return check_files()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
