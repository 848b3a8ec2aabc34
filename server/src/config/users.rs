//! `[[users]]`: staff and admins, each with an argon2id password hash; staff
//! name the counters they work at.

use super::check::{Ctx, IdList, Seen};
use super::raw::RawUser;
use super::types::{ConfigError, Counter, User, UserRole};
use crate::secret::is_argon2id_hash;

const COUNTERS: IdList = IdList {
    field: "users.counters",
    names: "counter",
    duplicate: "counter of this user",
};

pub(super) fn parse(
    ctx: &Ctx,
    raw: &[RawUser],
    counters: &[Counter],
) -> Result<Vec<User>, ConfigError> {
    let mut names = Seen::new("username", "users.username");
    let mut users = Vec::with_capacity(raw.len());
    for u in raw {
        users.push(user(ctx, u, counters, &mut names)?);
    }
    Ok(users)
}

fn user<'a>(
    ctx: &Ctx,
    u: &'a RawUser,
    counters: &[Counter],
    names: &mut Seen<'a>,
) -> Result<User, ConfigError> {
    let name = u.username.get_ref();
    if name.is_empty()
        || name.len() > luot_protocol::MAX_USERNAME
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ctx.err(
            u.username.span(),
            "users.username",
            format!("\"{name}\" is not a username (1-64 characters, no spaces)"),
        ));
    }
    names.check(ctx, &u.username)?;
    let role = match u.role.get_ref().as_str() {
        "staff" => UserRole::Staff,
        "admin" => UserRole::Admin,
        other => {
            return Err(ctx.err(
                u.role.span(),
                "users.role",
                format!("\"{other}\" is not a user role (\"staff\" or \"admin\")"),
            ));
        }
    };
    let hash = u.password_hash.get_ref();
    if !is_argon2id_hash(hash) {
        return Err(ctx.err(
            u.password_hash.span(),
            "users.password_hash",
            format!(
                "user \"{name}\": not an argon2id hash; make one with `luot-server hash-password`"
            ),
        ));
    }
    let owner = format!("user \"{name}\"");
    let known = |id: &str| counters.iter().any(|c| c.id == id);
    let user_counters = match &u.counters {
        Some(list) => COUNTERS.read(ctx, &owner, list.get_ref(), known)?,
        None => Vec::new(),
    };
    Ok(User {
        username: name.clone(),
        role,
        password_hash: hash.clone(),
        counters: user_counters,
    })
}
