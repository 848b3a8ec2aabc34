//! `[[devices]]`: kiosks (with their service buttons, or none for a desk
//! printer), displays, and integrations (a portal or hospital app, §11: the
//! services it books and issues for, by default all), each known by the
//! sha256 of its token.

use super::check::{Ctx, IdList, Seen};
use super::raw::RawDevice;
use super::types::{ConfigError, Device, DeviceRole, Service};

const SERVICES: IdList = IdList {
    field: "devices.services",
    names: "service",
    duplicate: "service on this kiosk",
};

const INTEGRATION_SERVICES: IdList = IdList {
    field: "devices.services",
    names: "service",
    duplicate: "service of this integration",
};

pub(super) fn parse(
    ctx: &Ctx,
    raw: &[RawDevice],
    services: &[Service],
) -> Result<Vec<Device>, ConfigError> {
    let mut ids = Seen::new("device id", "devices.id");
    let mut tokens = Seen::new("token_sha256", "devices.token_sha256");
    let mut devices = Vec::with_capacity(raw.len());
    for d in raw {
        devices.push(device(ctx, d, services, &mut ids, &mut tokens)?);
    }
    Ok(devices)
}

fn device<'a>(
    ctx: &Ctx,
    d: &'a RawDevice,
    services: &[Service],
    ids: &mut Seen<'a>,
    tokens: &mut Seen<'a>,
) -> Result<Device, ConfigError> {
    ids.check_id(ctx, &d.id)?;
    let role = match d.role.get_ref().as_str() {
        "kiosk" => DeviceRole::Kiosk,
        "display" => DeviceRole::Display,
        "integration" => DeviceRole::Integration,
        other => {
            return Err(ctx.err(
                d.role.span(),
                "devices.role",
                format!(
                    "\"{other}\" is not a device role (\"kiosk\", \"display\" or \"integration\")"
                ),
            ));
        }
    };
    let hash = d.token_sha256.get_ref();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ctx.err(
            d.token_sha256.span(),
            "devices.token_sha256",
            format!(
                "device \"{}\": not a sha256 in hex; make one with `luot-server token`",
                d.id.get_ref()
            ),
        ));
    }
    tokens.check(ctx, &d.token_sha256)?;
    let buttons = buttons(ctx, d, role, services)?;
    Ok(Device {
        id: d.id.get_ref().clone(),
        role,
        token_sha256: hash.to_ascii_lowercase(),
        services: buttons,
    })
}

/// A kiosk's services (its buttons; none for a desk printer); an
/// integration's (those listed, else all); a display has none.
fn buttons(
    ctx: &Ctx,
    d: &RawDevice,
    role: DeviceRole,
    services: &[Service],
) -> Result<Vec<String>, ConfigError> {
    let Some(list) = &d.services else {
        // A kiosk with no services is a desk printer (rule 66): it prints the
        // jobs of `POST /tickets/{id}/print` and issues nothing.
        return Ok(match role {
            DeviceRole::Integration => services.iter().map(|s| s.id.clone()).collect(),
            DeviceRole::Kiosk | DeviceRole::Display => Vec::new(),
        });
    };
    if role == DeviceRole::Display && !list.get_ref().is_empty() {
        return Err(ctx.err(
            list.span(),
            "devices.services",
            "a display has no services: only kiosks (their buttons) and integrations list them"
                .into(),
        ));
    }
    let ids = match role {
        DeviceRole::Integration => &INTEGRATION_SERVICES,
        DeviceRole::Kiosk | DeviceRole::Display => &SERVICES,
    };
    let owner = format!("device \"{}\"", d.id.get_ref());
    let known = |id: &str| services.iter().any(|s| s.id == id);
    ids.read(ctx, &owner, list.get_ref(), known)
}
