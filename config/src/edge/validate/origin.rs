//! Origin pools: servers and weights, TLS to the origin, health checks, retries and timeouts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::{dur, valid_host_name, valid_host_port};
use crate::check::Problems;
use crate::edge::file::{self, LbFile, ServerFile};
use crate::edge::{HealthCheck, LoadBalancing, Origin, PassiveHealth, Server};

/// Pingora's selection spreads weights over a fixed ring; far larger weights only cost memory.
const MAX_WEIGHT: u32 = 1000;

pub(super) fn origins(
    p: &mut Problems,
    f: &Spanned<BTreeMap<String, Spanned<file::OriginFile>>>,
) -> BTreeMap<String, Origin> {
    if f.value.is_empty() {
        p.at(f, "origins", "at least one origin is needed");
    }
    f.value
        .iter()
        .map(|(name, o)| {
            (
                name.clone(),
                origin(p, &o.value, &format!("origins.{name}")),
            )
        })
        .collect()
}

fn origin(p: &mut Problems, v: &file::OriginFile, field: &str) -> Origin {
    if v.servers.value.is_empty() {
        p.at(
            &v.servers,
            format!("{field}.servers"),
            "at least one server is needed",
        );
    }
    let mut servers = Vec::new();
    for (i, s) in v.servers.value.iter().enumerate() {
        let (addr, weight) = match &s.value {
            ServerFile::Addr(a) => (a, None),
            ServerFile::Weighted { addr, weight } => (addr, *weight),
        };
        if !valid_host_port(addr) {
            p.at(
                s,
                format!("{field}.servers[{i}]"),
                format!("`{addr}` is not `host:port`"),
            );
        }
        if weight.is_some_and(|w| w == 0 || w > MAX_WEIGHT) {
            p.at(
                s,
                format!("{field}.servers[{i}].weight"),
                format!("must be between 1 and {MAX_WEIGHT}"),
            );
        }
        servers.push(Server {
            addr: addr.clone(),
            weight: weight.unwrap_or(1),
        });
    }
    for (opt, name) in [(&v.sni, "sni"), (&v.ca_file, "ca_file")] {
        if let Some(x) = opt {
            if !v.tls {
                p.at(
                    x,
                    format!("{field}.{name}"),
                    "is only used with `tls: true`",
                );
            }
        }
    }
    if let Some(x) = &v.verify {
        if !v.tls {
            p.at(
                x,
                format!("{field}.verify"),
                "is only used with `tls: true`",
            );
        }
    }
    if let Some(sni) = &v.sni {
        if !valid_host_name(&sni.value) {
            p.at(sni, format!("{field}.sni"), "must be a host name");
        }
    }
    if let Some(ca) = &v.ca_file {
        if ca.value.is_empty() {
            p.at(ca, format!("{field}.ca_file"), "must be a file path");
        }
    }
    if let Some(h) = &v.host_header {
        if crate::host::normalize_host(&h.value).is_none() {
            p.at(
                h,
                format!("{field}.host_header"),
                format!("`{}` is not a host name (with an optional port)", h.value),
            );
        }
    }
    let health_check = v.health_check.as_ref().map(|h| {
        if !h.path.value.starts_with('/') {
            p.at(
                &h.path,
                format!("{field}.health_check.path"),
                "must start with `/`",
            );
        }
        if let Some(i) = &h.interval {
            if i.value.0 < Duration::from_millis(100) {
                p.at(
                    i,
                    format!("{field}.health_check.interval"),
                    "must be at least 100ms",
                );
            }
        }
        for (t, n) in [(&h.rise, "rise"), (&h.fall, "fall")] {
            if let Some(t) = t {
                if t.value == 0 || t.value > 100 {
                    p.at(
                        t,
                        format!("{field}.health_check.{n}"),
                        "must be between 1 and 100",
                    );
                }
            }
        }
        if let Some(port) = h.port.as_ref().filter(|x| x.value == 0) {
            p.at(
                port,
                format!("{field}.health_check.port"),
                "must be a port (1-65535)",
            );
        }
        HealthCheck {
            path: h.path.value.clone(),
            interval: dur(&h.interval).unwrap_or(Duration::from_secs(5)),
            rise: h.rise.as_ref().map_or(2, |x| x.value),
            fall: h.fall.as_ref().map_or(3, |x| x.value),
            port: h.port.as_ref().map(|x| x.value),
            tls: h.tls.as_ref().map(|x| x.value),
        }
    });
    let passive = match &v.passive_health {
        None => PassiveHealth {
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
        },
        Some(ph) => {
            if let Some(t) = &ph.fail_timeout {
                if t.value.0.is_zero() {
                    p.at(
                        t,
                        format!("{field}.passive_health.fail_timeout"),
                        "must be greater than 0",
                    );
                }
            }
            PassiveHealth {
                max_fails: ph.max_fails.as_ref().map_or(1, |x| x.value),
                fail_timeout: dur(&ph.fail_timeout).unwrap_or(Duration::from_secs(10)),
            }
        }
    };
    if let Some(r) = &v.retries {
        if r.value > 10 {
            p.at(r, format!("{field}.retries"), "must be at most 10");
        }
    }
    for (t, n) in [
        (&v.connect_timeout, "connect_timeout"),
        (&v.read_timeout, "read_timeout"),
        (&v.write_timeout, "write_timeout"),
        (&v.idle_timeout, "idle_timeout"),
    ] {
        if let Some(t) = t {
            if t.value.0.is_zero() {
                p.at(t, format!("{field}.{n}"), "must be greater than 0");
            }
        }
    }
    let read_timeout = dur(&v.read_timeout).unwrap_or(Duration::from_secs(30));
    Origin {
        retries: v.retries.as_ref().map_or_else(
            || (servers.len() as u32).saturating_sub(1).min(2),
            |r| r.value,
        ),
        servers,
        tls: v.tls,
        sni: v.sni.as_ref().map(|s| s.value.clone()),
        verify: v.verify.as_ref().is_none_or(|x| x.value),
        ca_file: v.ca_file.as_ref().map(|c| PathBuf::from(&c.value)),
        host_header: v.host_header.as_ref().map(|h| h.value.clone()),
        lb: match v.lb {
            LbFile::RoundRobin => LoadBalancing::RoundRobin,
            LbFile::ConsistentHash => LoadBalancing::ConsistentHash,
        },
        health_check,
        passive,
        connect_timeout: dur(&v.connect_timeout).unwrap_or(Duration::from_secs(2)),
        read_timeout,
        write_timeout: dur(&v.write_timeout).unwrap_or(read_timeout),
        idle_timeout: dur(&v.idle_timeout).unwrap_or(Duration::from_secs(60)),
    }
}
