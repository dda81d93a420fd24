//! A start-up look at the file system under the disk tier.
//!
//! ext4 without a journal will not reuse an inode freed in the last minute (six while its
//! inode-table block is not yet written back), and it tests each free candidate by looking that
//! block up and reading the inode's deletion time. After many deletions (eviction, purges,
//! another process's clean-up) every body file the tier creates scans past them, a large part
//! of the CPU of a miss storm; a journaled ext4 does not show it. The tier works on either, so
//! this only warns.

use std::fs;
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`, the fields the check needs.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    point: PathBuf,
    fstype: String,
    /// `major:minor` of the device, as `/sys/dev/block` names it.
    device: String,
}

/// The kernel's name for the block device under `path` (`vda`, `nvme0n1p2`) when `path` is on
/// ext4 mounted without a journal; `None` when it has one, is another file system, or the
/// kernel's tables cannot be read.
pub(crate) fn unjournaled_ext4(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mount_of(&mountinfo, &path)?;
    if mount.fstype != "ext4" {
        return None;
    }
    let link = fs::read_link(format!("/sys/dev/block/{}", mount.device)).ok()?;
    let name = link.file_name()?.to_str()?.to_owned();
    // jbd2 lists each journal it runs as `<device>-<journal inode>`; with no journaled file
    // system mounted at all, the folder is missing.
    let journals: Vec<String> = fs::read_dir("/proc/fs/jbd2")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    (!has_journal(&journals, &name)).then_some(name)
}

/// Whether jbd2's list of journals has one for the device `name`.
fn has_journal(journals: &[String], name: &str) -> bool {
    journals.iter().any(|j| {
        j.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|inode| !inode.is_empty() && inode.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The mount `path` (canonical) lives on: the deepest mount point above it, the last mounted
/// where two share a point (the later one hides the earlier).
fn mount_of(mountinfo: &str, path: &Path) -> Option<Mount> {
    let mut best: Option<Mount> = None;
    for mount in mountinfo.lines().filter_map(parse_line) {
        if !path.starts_with(&mount.point) {
            continue;
        }
        let deeper = best
            .as_ref()
            .is_none_or(|b| mount.point.components().count() >= b.point.components().count());
        if deeper {
            best = Some(mount);
        }
    }
    best
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`: the device is the third
/// field, the mount point the fifth, the type the first after the `-` that ends the optional
/// fields.
fn parse_line(line: &str) -> Option<Mount> {
    let mut fields = line.split(' ');
    let device = fields.nth(2)?.to_owned();
    let point = PathBuf::from(unescape(fields.nth(1)?));
    let fstype = fields.skip_while(|f| *f != "-").nth(1)?.to_owned();
    Some(Mount {
        point,
        fstype,
        device,
    })
}

/// Undoes the kernel's octal escapes (`\040` for a space) in a mount point.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = match bytes[i] {
            b'\\' => bytes
                .get(i + 1..i + 4)
                .filter(|d| d[0] <= b'3' && d.iter().all(|b| (b'0'..=b'7').contains(b))),
            _ => None,
        };
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, b| n * 8 + (b - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /dev/shm rw,nosuid,nodev shared:2 - tmpfs tmpfs rw
25 22 7:0 / /mnt/cache rw,relatime shared:40 - ext4 /dev/loop0 rw
26 25 0:23 / /mnt/cache/hot rw - tmpfs tmpfs rw
27 22 7:1 / /mnt/my\\040cache rw - xfs /dev/loop1 rw,attr2
28 22 7:2 / /mnt/cache rw,relatime - ext4 /dev/loop2 rw
";

    fn mount(point: &str) -> Option<(String, String)> {
        mount_of(MOUNTINFO, Path::new(point)).map(|m| (m.fstype, m.device))
    }

    #[test]
    fn a_path_is_on_the_deepest_mount_above_it() {
        assert_eq!(
            mount("/var/cache/edge"),
            Some(("ext4".into(), "254:0".into()))
        );
        assert_eq!(mount("/dev/shm/x"), Some(("tmpfs".into(), "0:22".into())));
        assert_eq!(
            mount("/mnt/cache/hot/a"),
            Some(("tmpfs".into(), "0:23".into()))
        );
        // A sibling whose name only begins like a mount point is not under it.
        assert_eq!(mount("/dev/shmx"), Some(("ext4".into(), "254:0".into())));
    }

    #[test]
    fn a_later_mount_on_the_same_point_hides_the_earlier() {
        assert_eq!(
            mount("/mnt/cache/edge"),
            Some(("ext4".into(), "7:2".into()))
        );
    }

    #[test]
    fn escaped_mount_points_are_matched_by_their_real_name() {
        assert_eq!(
            mount("/mnt/my cache/edge"),
            Some(("xfs".into(), "7:1".into()))
        );
        assert_eq!(unescape(r"a\134b\011c\0"), "a\\b\tc\\0");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(parse_line(""), None);
        assert_eq!(
            parse_line("22 1 254:0 / / rw shared:1 ext4 /dev/vda rw"),
            None
        );
        assert_eq!(mount_of("garbage\n", Path::new("/")), None);
    }

    #[test]
    fn a_journal_is_found_by_its_device_name() {
        let journals = vec!["loop0-8".to_owned(), "nvme0n1p2-8".to_owned()];
        assert!(has_journal(&journals, "loop0"));
        assert!(has_journal(&journals, "nvme0n1p2"));
        assert!(!has_journal(&journals, "vda"));
        // `loop0-8` is not a journal of `loop`, nor of `nvme0n1`.
        assert!(!has_journal(&journals, "loop"));
        assert!(!has_journal(&journals, "nvme0n1"));
        assert!(!has_journal(&[], "vda"));
    }

    #[test]
    fn reads_the_running_kernels_tables() {
        // The parser reads the running kernel's own table: every folder is on some mount, and
        // `/proc` on the proc file system. Whatever file system the test runs on, a warning
        // names a real block device, and `/proc` (never ext4) gets none.
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let under_tmp = mount_of(&mountinfo, &dir).expect("the temp folder's mount");
        assert!(!under_tmp.fstype.is_empty() && under_tmp.device.contains(':'));
        let proc = mount_of(&mountinfo, Path::new("/proc/self")).expect("/proc's mount");
        assert_eq!(proc.fstype, "proc");
        if let Some(name) = unjournaled_ext4(&dir) {
            assert!(Path::new("/sys/class/block").join(&name).exists(), "{name}");
        }
        assert_eq!(unjournaled_ext4(Path::new("/proc/self")), None);
    }
}
