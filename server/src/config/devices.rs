//! `[[devices]]`: kiosks (with their service buttons, or none for a desk
//! printer) and displays, each known by the sha256 of its token.

use super::check::{Ctx, IdList, Seen};
use super::raw::RawDevice;
use super::types::{ConfigError, Device, DeviceRole, Service};

const SERVICES: IdList = IdList {
    field: "devices.services",
    names: "service",
    duplicate: "service on this kiosk",
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
        other => {
            return Err(ctx.err(
                d.role.span(),
                "devices.role",
                format!("\"{other}\" is not a device role (\"kiosk\" or \"display\")"),
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

/// A kiosk's services (its buttons; none for a desk printer); a display has none.
fn buttons(
    ctx: &Ctx,
    d: &RawDevice,
    role: DeviceRole,
    services: &[Service],
) -> Result<Vec<String>, ConfigError> {
    let mut buttons = Vec::new();
    if let Some(list) = &d.services {
        if role == DeviceRole::Display && !list.get_ref().is_empty() {
            return Err(ctx.err(
                list.span(),
                "devices.services",
                "only a kiosk has buttons for services".into(),
            ));
        }
        let owner = format!("device \"{}\"", d.id.get_ref());
        let known = |id: &str| services.iter().any(|s| s.id == id);
        buttons = SERVICES.read(ctx, &owner, list.get_ref(), known)?;
    }
    // A kiosk with no services is a desk printer (rule 66): it prints the
    // jobs of `POST /tickets/{id}/print` and issues nothing.
    Ok(buttons)
}
