//! User and group names, read from `/etc/passwd` and `/etc/group`.
//!
//! The binaries are linked statically, and a static glibc cannot safely
//! load NSS modules: `getgrnam("nosuchgroup")` falls through to
//! `libnss_systemd` and crashes. So names are looked up in the two files
//! directly; accounts that exist only in a directory service can still be
//! named by number (`grp=1234`, `-g 1234`), as vdeplug4 allows.

use std::path::Path;

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// The fields of the `:`-separated line of `file` whose field `key_at`
/// equals `key`.
fn find_line(file: &Path, key_at: usize, key: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .map(|l| l.split(':').map(String::from).collect::<Vec<_>>())
        .find(|f| f.get(key_at).is_some_and(|k| k == key))
}

/// The login name of `uid`.
pub fn user_name(uid: u32) -> Option<String> {
    user_name_in(Path::new(PASSWD), uid)
}

fn user_name_in(passwd: &Path, uid: u32) -> Option<String> {
    find_line(passwd, 2, &uid.to_string()).and_then(|f| f.first().cloned())
}

/// A group name or number to a gid, as vdeplug4 reads `grp=` and `-g`: a
/// name from /etc/group, else the leading digits of a number.
pub fn group_id(name: &str) -> Option<u32> {
    group_id_in(Path::new(GROUP), name)
}

fn group_id_in(group: &Path, name: &str) -> Option<u32> {
    if let Some(f) = find_line(group, 0, name) {
        return f.get(2)?.parse().ok();
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        let digits: String = name.chars().take_while(|c| c.is_ascii_digit()).collect();
        return digits.parse().ok();
    }
    None
}

/// A group name that is neither in /etc/group nor a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownGroup(pub String);

impl std::fmt::Display for UnknownGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid group: {}", self.0)
    }
}

/// [`group_id`], or the error that names the group.
pub fn known_group(name: &str) -> Result<u32, UnknownGroup> {
    group_id(name).ok_or_else(|| UnknownGroup(name.to_string()))
}

/// Whether user `uid` belongs to the group named `group`: it is the user's
/// primary group, or the group lists the user as a member.
pub fn user_in_group(uid: u32, group: &str) -> bool {
    user_in_group_in(Path::new(PASSWD), Path::new(GROUP), uid, group)
}

fn user_in_group_in(passwd: &Path, group_file: &Path, uid: u32, group: &str) -> bool {
    let Some(user) = find_line(passwd, 2, &uid.to_string()) else {
        return false;
    };
    let Some(g) = find_line(group_file, 0, group) else {
        return false;
    };
    let primary = user.get(3).is_some_and(|gid| g.get(2) == Some(gid));
    let listed = g
        .get(3)
        .is_some_and(|members| members.split(',').any(|m| m == user[0]));
    primary || listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let dir = std::env::temp_dir().join(format!("vpt-accounts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (p, g) = (dir.join("passwd"), dir.join("group"));
        std::fs::write(&p, "root:x:0:0:root:/root:/bin/sh\nann:x:1000:100::/home/ann:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n").unwrap();
        std::fs::write(
            &g,
            "root:x:0:\nusers:x:100:\nvdeplug_iplog:x:120:bob,carl\nbob:x:1001:\n",
        )
        .unwrap();
        assert_eq!(user_name_in(&p, 1000).as_deref(), Some("ann"));
        assert_eq!(user_name_in(&p, 42), None);
        assert_eq!(group_id_in(&g, "users"), Some(100));
        assert_eq!(group_id_in(&g, "1234"), Some(1234));
        assert_eq!(group_id_in(&g, "nosuchgroup"), None);
        assert!(user_in_group_in(&p, &g, 1000, "users"));
        assert!(user_in_group_in(&p, &g, 1001, "vdeplug_iplog"));
        assert!(!user_in_group_in(&p, &g, 1000, "vdeplug_iplog"));
        assert!(!user_in_group_in(&p, &g, 7, "users"));
        std::fs::remove_dir_all(&dir).unwrap();
        // The real files: root is there on any system.
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("surely-no-such-group"), None);
    }
}
