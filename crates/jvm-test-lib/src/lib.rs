//! The host `libcloudsync.so` of the JVM tests (`scripts/test-jvm.sh`): the
//! library built with `ffi-test-hooks`, plus a loopback tus server over TLS
//! inside the test JVM's process, so that the credential tests can require
//! and rotate a bearer token and read what the server saw, and the refresh
//! tests can serve a root's mirror. Its own crate because the dev server
//! depends on the library, and the library never contains the dev server:
//! the phone's `.so` is built from the root crate alone.
//!
//! A `cdylib` exports the `#[no_mangle]` functions of the crates it links, so
//! this one library holds every `Java_com_miui_cloudsync_*` entry point of
//! `cloudsync` as well as the `testServer*` ones below (scripts/test-jvm.sh
//! checks both with `nm`).

// Exported JNI entry points are `#[no_mangle]` (the lint counts them as unsafe code).
#![allow(unsafe_code)]

// Linked for its exported entry points, not called from here.
use cloudsync as _;

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use ::jni::objects::{JByteArray, JClass, JLongArray, JObject, JObjectArray, JString};
use ::jni::sys::{jint, jlong, jsize};
use ::jni::JNIEnv;

use cloudsync::ffi::jni::test_support::{
    opt_string_arg, run, sat, string_arg, JniResultExt, STRING_CLASS,
};
use cloudsync::{Error, Result};
use cloudsync_devserver::{Fault, ServerOptions, TestCa, TusServer};

/// The servers and their CA certificates (PEM), by id - 1; `None` once stopped.
type Servers = Vec<Option<(TusServer, String)>>;
static SERVERS: Mutex<Servers> = Mutex::new(Vec::new());

fn servers() -> MutexGuard<'static, Servers> {
    SERVERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The index of server `id` in [`SERVERS`].
fn index(id: jlong) -> Option<usize> {
    usize::try_from(id).ok()?.checked_sub(1)
}

fn with_server<T>(id: jlong, f: impl FnOnce(&TusServer, &str) -> Result<T>) -> Result<T> {
    let servers = servers();
    let slot = index(id).and_then(|i| servers.get(i));
    let (server, ca_pem) = slot
        .and_then(Option::as_ref)
        .ok_or(Error::InvalidArgument("no such test server"))?;
    f(server, ca_pem)
}

/// `static native long testServerStart(String dir, String token)`: a tus
/// server on 127.0.0.1 (a certificate of a new CA) storing uploads in
/// `dir` and requiring `Bearer <token>` (`null`: anonymous); returns its id.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerStart<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    dir: JString<'local>,
    token: JString<'local>,
) -> jlong {
    run(&mut env, |env| {
        let dir = string_arg(env, &dir, "dir is null")?;
        let ca = TestCa::new("cloudsync JVM test CA");
        let ip = IpAddr::from([127, 0, 0, 1]);
        let mut opts = ServerOptions::new((ip, 0).into(), ca.issue(&[], &[ip]), dir, "127.0.0.1");
        opts.bearer_token = opt_string_arg(env, &token)?;
        let server =
            TusServer::start(opts).map_err(|e| Error::Internal(format!("test server: {e}")))?;
        let mut servers = servers();
        servers.push(Some((server, ca.cert_pem())));
        Ok(sat(servers.len() as u64))
    })
}

/// `static native long testMirrorStart(String dir)`: a root's mirror on
/// 127.0.0.1 (a certificate of a new CA) serving the files of `dir` under
/// `/sources/` (`config.json`, `root/<N>.json`; read on every request);
/// returns its id (the other `testServer*` calls apply to it).
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testMirrorStart<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    dir: JString<'local>,
) -> jlong {
    run(&mut env, |env| {
        let dir = std::path::PathBuf::from(string_arg(env, &dir, "dir is null")?);
        let ca = TestCa::new("cloudsync JVM test CA");
        let ip = IpAddr::from([127, 0, 0, 1]);
        let mut opts = ServerOptions::new(
            (ip, 0).into(),
            ca.issue(&[], &[ip]),
            dir.join("uploads"),
            "127.0.0.1",
        );
        opts.sources_dir = Some(dir);
        let server = TusServer::start(opts).map_err(|e| Error::Internal(format!("mirror: {e}")))?;
        let mut servers = servers();
        servers.push(Some((server, ca.cert_pem())));
        Ok(sat(servers.len() as u64))
    })
}

/// `static native int testServerPort(long id)`.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerPort<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    id: jlong,
) -> jint {
    run(&mut env, |_| {
        with_server(id, |s, _| Ok(jint::from(s.port())))
    })
}

/// `static native byte[] testServerCaPem(long id)`: the certificate of its CA.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerCaPem<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    id: jlong,
) -> JByteArray<'local> {
    run(&mut env, |env| {
        let pem = with_server(id, |_, pem| Ok(pem.to_string()))?;
        env.byte_array_from_slice(pem.as_bytes()).jni()
    })
}

/// `static native void testServerSetToken(long id, String token)`: the
/// token required from now on (`null`: anonymous).
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerSetToken<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    id: jlong,
    token: JString<'local>,
) {
    run(&mut env, |env| {
        let token = opt_string_arg(env, &token)?;
        with_server(id, |s, _| {
            s.set_token(token);
            Ok(())
        })
    })
}

/// `static native void testServerFail(long id, String method, int status)`:
/// the next request with `method` (`null`: any) is answered `status`.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerFail<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    id: jlong,
    method: JString<'local>,
    status: jint,
) {
    run(&mut env, |env| {
        let method = match opt_string_arg(env, &method)? {
            None => None,
            Some(m) => Some(
                ["OPTIONS", "HEAD", "POST", "PATCH", "DELETE"]
                    .into_iter()
                    .find(|k| *k == m)
                    .ok_or(Error::InvalidArgument("unknown method"))?,
            ),
        };
        let status = u16::try_from(status).map_err(|_| Error::InvalidArgument("bad status"))?;
        with_server(id, |s, _| {
            s.push_fault(Fault::Status {
                method,
                status,
                retry_after: None,
            });
            Ok(())
        })
    })
}

/// `static native String[] testServerAuthorizations(long id)`: every
/// `Authorization` value received, oldest first.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerAuthorizations<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    id: jlong,
) -> JObjectArray<'local> {
    run(&mut env, |env| {
        let seen = with_server(id, |s, _| Ok(s.authorizations()))?;
        let len = jsize::try_from(seen.len()).map_err(|_| Error::Internal("too many".into()))?;
        let array = env
            .new_object_array(len, STRING_CLASS, JObject::null())
            .jni()?;
        for (i, a) in (0..len).zip(&seen) {
            let s = env.auto_local(env.new_string(a).jni()?);
            env.set_object_array_element(&array, i, &*s).jni()?;
        }
        Ok(array)
    })
}

/// `static native long[] testServerStats(long id)`: requests,
/// authorizationHeaders, unauthorized, uploadsCreated, uploadsCompleted,
/// bodyBytesReceived.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerStats<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    id: jlong,
) -> JLongArray<'local> {
    run(&mut env, |env| {
        let s = with_server(id, |s, _| Ok(s.stats()))?;
        let v = [
            s.requests,
            s.authorization_headers,
            s.unauthorized,
            s.uploads_created,
            s.uploads_completed,
            s.body_bytes_received,
        ]
        .map(sat);
        let out = env.new_long_array(v.len() as jsize).jni()?;
        env.set_long_array_region(&out, 0, &v).jni()?;
        Ok(out)
    })
}

/// `static native void testServerStop(long id)`: stops it (its files stay).
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerStop<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    id: jlong,
) {
    run(&mut env, |_| {
        let server = index(id).and_then(|i| servers().get_mut(i).and_then(Option::take));
        drop(server.ok_or(Error::InvalidArgument("no such test server"))?);
        Ok(())
    })
}
