//! `[site]` and `[server]`: the id, the name, time zone, start of the day, public
//! address, listening address and data directory, with their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveTime;
use chrono_tz::Tz;
use toml::Spanned;

use super::check::Ctx;
use super::raw::{RawServer, RawSite};
use super::types::{ConfigError, Server, Site};

/// `[site]` and `[server]` together: the default public URL is the
/// listening address.
pub(super) fn parse(
    ctx: &Ctx,
    site: &RawSite,
    server: Option<&RawServer>,
) -> Result<(Site, Server), ConfigError> {
    let name = site.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(ctx.err(
            site.name.span(),
            "site.name",
            "the site needs a name".into(),
        ));
    }
    let id = site_id(ctx, site.id.as_ref())?;
    let timezone = timezone(ctx, site.timezone.as_ref())?;
    let day_starts_at = day_starts_at(ctx, site.day_starts_at.as_ref())?;
    let server = parse_server(ctx, server)?;
    let public_url = public_url(ctx, site.public_url.as_ref(), server.listen)?;
    let site = Site {
        id,
        name,
        timezone,
        day_starts_at,
        public_url,
    };
    Ok((site, server))
}

/// `[site] id` (§12): `[a-z0-9-]{1,32}`, default "luot".
fn site_id(ctx: &Ctx, id: Option<&Spanned<String>>) -> Result<String, ConfigError> {
    let Some(id) = id else {
        return Ok("luot".into());
    };
    let s = id.get_ref();
    let ok = (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(ctx.err(
            id.span(),
            "site.id",
            format!("\"{s}\" is not a site id (1-32 of a-z, 0-9, -)"),
        ));
    }
    Ok(s.clone())
}

fn timezone(ctx: &Ctx, tz: Option<&Spanned<String>>) -> Result<Tz, ConfigError> {
    let Some(tz) = tz else {
        return Ok(chrono_tz::Asia::Ho_Chi_Minh);
    };
    tz.get_ref().parse().map_err(|_| {
        ctx.err(
            tz.span(),
            "site.timezone",
            format!(
                "\"{}\" is not a time zone of the tz database (for example Asia/Ho_Chi_Minh)",
                tz.get_ref()
            ),
        )
    })
}

fn day_starts_at(ctx: &Ctx, t: Option<&Spanned<String>>) -> Result<NaiveTime, ConfigError> {
    let Some(t) = t else {
        return Ok(NaiveTime::from_hms_opt(5, 0, 0).unwrap_or_default());
    };
    NaiveTime::parse_from_str(t.get_ref(), "%H:%M").map_err(|_| {
        ctx.err(
            t.span(),
            "site.day_starts_at",
            format!("\"{}\" is not a time of day like \"05:00\"", t.get_ref()),
        )
    })
}

fn parse_server(ctx: &Ctx, raw: Option<&RawServer>) -> Result<Server, ConfigError> {
    let mut server = Server {
        listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
        data_dir: PathBuf::from("/var/lib/luot"),
        public_board: false,
    };
    let Some(raw) = raw else {
        return Ok(server);
    };
    if let Some(l) = &raw.listen {
        server.listen = l.get_ref().parse().map_err(|_| {
            ctx.err(
                l.span(),
                "server.listen",
                format!("\"{}\" is not an address such as 0.0.0.0:8080", l.get_ref()),
            )
        })?;
    }
    if let Some(d) = &raw.data_dir {
        if d.get_ref().is_empty() {
            return Err(ctx.err(
                d.span(),
                "server.data_dir",
                "the data directory cannot be empty".into(),
            ));
        }
        server.data_dir = PathBuf::from(d.get_ref());
    }
    server.public_board = raw.public_board.unwrap_or(false);
    Ok(server)
}

fn public_url(
    ctx: &Ctx,
    url: Option<&Spanned<String>>,
    listen: SocketAddr,
) -> Result<String, ConfigError> {
    let Some(u) = url else {
        return Ok(format!("http://{listen}"));
    };
    let s = u.get_ref().trim_end_matches('/').to_string();
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return Err(ctx.err(
            u.span(),
            "site.public_url",
            format!("\"{}\" must start with http:// or https://", u.get_ref()),
        ));
    }
    Ok(s)
}
