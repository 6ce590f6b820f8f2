//! Unit tests of `Link::options` and `tls_config`, with the throwaway PEM files in
//! `mqtt/testdata/` (see its README): what each setting turns into, and that every refusal
//! names its setting and file.

use std::path::PathBuf;

use rumqttc::{TlsConfiguration, Transport};

use super::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn tls_link() -> Link {
    Link {
        ca_file: Some(fixture("ca.pem")),
        ..Link::new("mqtts://127.0.0.1", "pi-a")
    }
}

fn err(link: &Link) -> LinkError {
    match link.options() {
        Ok(_) => panic!("{link:?} was accepted"),
        Err(e) => e,
    }
}

fn rustls_config(opts: &MqttOptions) -> Arc<rustls::ClientConfig> {
    match opts.transport() {
        Transport::Tls(TlsConfiguration::Rustls(c)) => c,
        _ => panic!("not a rustls transport"),
    }
}

#[test]
fn a_plain_link_becomes_tcp_options() {
    let link = Link {
        username: Some("hub".into()),
        password: Some("s3cret".into()),
        keep_alive: Duration::from_secs(7),
        ..Link::new("mqtt://[::1]:1884", "edge-hub-1")
    };
    let o = link.options().expect("options");
    assert_eq!(o.broker_address(), ("::1".to_owned(), 1884));
    assert_eq!(o.client_id(), "edge-hub-1");
    assert_eq!(o.keep_alive(), Duration::from_secs(7));
    assert_eq!(o.max_packet_size(), MAX_PACKET_BYTES);
    assert!(o.clean_session());
    let login = o.credentials().expect("credentials");
    assert_eq!(
        (login.username.as_str(), login.password.as_str()),
        ("hub", "s3cret")
    );
    assert!(matches!(o.transport(), Transport::Tcp));

    let anonymous = Link::new("mqtt://h", "c").options().expect("options");
    assert!(anonymous.credentials().is_none());
    assert_eq!(anonymous.keep_alive(), DEFAULT_KEEP_ALIVE);
    let user_only = Link {
        username: Some("u".into()),
        ..Link::new("mqtt://h", "c")
    };
    let login = user_only
        .options()
        .expect("options")
        .credentials()
        .expect("login");
    assert_eq!(
        (login.username.as_str(), login.password.as_str()),
        ("u", "")
    );
}

#[test]
fn mqtts_uses_rustls_with_the_ca_and_the_optional_client_certificate() {
    let o = tls_link().options().expect("options");
    assert_eq!(o.broker_address(), ("127.0.0.1".to_owned(), 8883));
    assert!(!rustls_config(&o).client_auth_cert_resolver.has_certs());

    let mutual = Link {
        client_cert: Some(fixture("client.pem")),
        client_key: Some(fixture("client.key")),
        ..tls_link()
    };
    let o = mutual.options().expect("options");
    assert!(rustls_config(&o).client_auth_cert_resolver.has_certs());
}

#[test]
fn tls_refusals_name_the_setting_and_the_file() {
    let ca = fixture("ca.pem");
    let key = fixture("client.key");
    let cases: Vec<(Link, Setting, String)> = vec![
        (
            Link {
                ca_file: None,
                ..tls_link()
            },
            Setting::CaFile,
            "ca_file is required for mqtts:// (a PEM CA bundle)".into(),
        ),
        (
            Link {
                ca_file: Some("/nonexistent/ca.pem".into()),
                ..tls_link()
            },
            Setting::CaFile,
            "ca_file /nonexistent/ca.pem: No such file or directory (os error 2)".into(),
        ),
        (
            // A key is PEM, but not a certificate.
            Link {
                ca_file: Some(key.clone()),
                ..tls_link()
            },
            Setting::CaFile,
            format!("ca_file {}: no certificate", key.display()),
        ),
        (
            Link {
                client_cert: Some(fixture("client.pem")),
                ..tls_link()
            },
            Setting::ClientKey,
            "client_cert is set without client_key".into(),
        ),
        (
            Link {
                client_key: Some(key.clone()),
                ..tls_link()
            },
            Setting::ClientCert,
            "client_key is set without client_cert".into(),
        ),
        (
            Link {
                client_cert: Some(key.clone()),
                client_key: Some(key.clone()),
                ..tls_link()
            },
            Setting::ClientCert,
            format!("client_cert {}: no certificate", key.display()),
        ),
        (
            Link {
                client_cert: Some(fixture("client.pem")),
                client_key: Some(ca.clone()),
                ..tls_link()
            },
            Setting::ClientKey,
            format!("client_key {}: no private key", ca.display()),
        ),
    ];
    for (link, setting, message) in cases {
        let e = err(&link);
        assert_eq!((e.setting(), e.to_string()), (setting, message), "{link:?}");
    }
}

#[test]
fn unusable_pem_contents_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let e = err(&Link {
        ca_file: Some(garbage.clone()),
        ..tls_link()
    });
    assert!(
        matches!(
            e,
            LinkError::Pem {
                setting: Setting::CaFile,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("ca_file {}: not valid PEM: ", garbage.display())),
        "{e}"
    );

    // Valid base64, not a certificate.
    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let e = err(&Link {
        ca_file: Some(junk.clone()),
        ..tls_link()
    });
    assert!(matches!(e, LinkError::BadCa { .. }), "{e:?}");
    assert_eq!(e.setting(), Setting::CaFile);

    let e = err(&Link {
        client_cert: Some(fixture("client.pem")),
        client_key: Some(fixture("other.key")),
        ..tls_link()
    });
    assert!(matches!(e, LinkError::ClientAuth { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "client_key {} does not fit client_cert {}: ",
            fixture("other.key").display(),
            fixture("client.pem").display()
        )),
        "{e}"
    );
}

#[test]
fn plain_settings_are_checked() {
    let base = || Link::new("mqtt://h", "c");
    let cases: Vec<(Link, Setting, &str)> = vec![
        (
            Link {
                url: "tcp://h".into(),
                ..base()
            },
            Setting::Url,
            "url \"tcp://h\" must start with mqtt:// or mqtts://",
        ),
        (
            Link {
                client_id: String::new(),
                ..base()
            },
            Setting::ClientId,
            "client_id \"\": must be 1 to 128 characters",
        ),
        (
            Link {
                client_id: "a b".into(),
                ..base()
            },
            Setting::ClientId,
            "client_id \"a b\": must not hold spaces or control characters",
        ),
        (
            Link {
                password: Some("p".into()),
                ..base()
            },
            Setting::Password,
            "password is set without username",
        ),
        (
            Link {
                keep_alive: Duration::from_millis(500),
                ..base()
            },
            Setting::KeepAlive,
            "keep_alive 500ms is under a second (zero turns it off)",
        ),
    ];
    for (link, setting, message) in cases {
        let e = err(&link);
        assert_eq!((e.setting(), e.to_string().as_str()), (setting, message));
    }
    let long = Link {
        client_id: "x".repeat(MAX_CLIENT_ID),
        keep_alive: Duration::ZERO,
        ..base()
    };
    assert!(long.options().is_ok());
    // TLS files on a plain URL are not an error (a warning is logged).
    assert!(
        Link {
            ca_file: Some("/nonexistent".into()),
            ..base()
        }
        .options()
        .is_ok()
    );
}

#[test]
fn debug_hides_the_password() {
    let link = Link {
        username: Some("hub".into()),
        password: Some("s3cret".into()),
        ..Link::new("mqtt://h", "c")
    };
    let shown = format!("{link:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}
