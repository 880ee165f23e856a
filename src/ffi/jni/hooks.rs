//! Entry points that exist only with `ffi-test-hooks` (never in the phone
//! build): a test `open` trusting a loopback CA, a deliberate panic and
//! error. The JVM tests' tus servers run in a
//! `cloudsync dev-server --admin` child process (`TestServer.java`).

use ::jni::objects::{JByteArray, JClass, JString};
use ::jni::sys::{jint, jlong};
use ::jni::JNIEnv;

use super::{bytes_arg, db_path_arg, run, to_jlong};
use crate::error::{Error, Result};
use crate::ffi::into_handle;
use crate::Agent;

/// `static native long openForTest(String dbPath, byte[] initialRoot, byte[] extraCaPem)`:
/// like `open`, also trusting the PEM certificates in `extraCaPem` for every
/// region (the loopback test CA). Only in builds with `ffi-test-hooks`.
#[cfg(feature = "ffi-test-hooks")]
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_openForTest<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    db_path: JString<'local>,
    initial_root: JByteArray<'local>,
    extra_ca_pem: JByteArray<'local>,
) -> jlong {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    run(&mut env, |env| {
        let path = db_path_arg(env, &db_path)?;
        let root = bytes_arg(env, &initial_root, "initialRoot is null")?;
        let pem = bytes_arg(env, &extra_ca_pem, "extraCaPem is null")?;
        let mut options = crate::AgentOptions::default();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|_| Error::malformed("extraCaPem", "not PEM certificates"))?;
            options.upload.extra_roots.push(cert);
        }
        if options.upload.extra_roots.is_empty() {
            return Err(Error::malformed("extraCaPem", "no certificate found"));
        }
        Ok(to_jlong(into_handle(Agent::open_with(
            path,
            Some(&root),
            options,
        )?)))
    })
}

/// `static native void nativePanicForTest()`: panics, to prove the panic
/// arrives as `SyncException` kind `internal`. Only with `ffi-test-hooks`.
#[cfg(feature = "ffi-test-hooks")]
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_nativePanicForTest<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
) {
    run(&mut env, |_| -> Result<()> {
        panic!("deliberate panic from nativePanicForTest")
    })
}

/// `static native void nativeErrorForTest(int index)`: throws the exception
/// for `ErrorKind::ALL[index]`, or returns normally when `index` is out of
/// range (so a test can enumerate every kind). Only with `ffi-test-hooks`.
#[cfg(feature = "ffi-test-hooks")]
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_nativeErrorForTest<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    index: jint,
) {
    run(&mut env, |_| {
        match usize::try_from(index)
            .ok()
            .and_then(|i| crate::ErrorKind::ALL.get(i))
        {
            Some(kind) => Err(crate::ffi::sample_error(*kind)),
            None => Ok(()),
        }
    })
}
