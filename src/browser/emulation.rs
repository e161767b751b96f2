//! The identity as chromiumoxide's CDP commands, set on a page before it loads anything:
//! User-Agent and client hints, languages, `navigator.platform`, the window and screen, touch
//! and mobile layout for a phone, the time zone, and no automation flag.

use chromiumoxide::cdp::browser_protocol::emulation::{
    SetAutomationOverrideParams, SetDeviceMetricsOverrideParams, SetTimezoneOverrideParams,
    SetTouchEmulationEnabledParams, SetUserAgentOverrideParams, UserAgentBrandVersion,
    UserAgentMetadata,
};
use chromiumoxide::Page;

use super::cdp::Broken;
use super::Identity;

/// A chromiumoxide error as a [`Broken`] browser, saying what was being done.
pub(super) fn err(what: &'static str) -> impl Fn(chromiumoxide::error::CdpError) -> Broken {
    move |e| Broken::Command {
        what,
        source: std::sync::Arc::new(e),
    }
}

/// Makes `page` present itself as `identity`.
pub(super) async fn present(page: &Page, identity: &Identity) -> Result<(), Broken> {
    page.execute(user_agent_override(identity))
        .await
        .map_err(err("setting the identity"))?;
    page.execute(device_metrics(identity))
        .await
        .map_err(err("setting the window size"))?;
    if identity.mobile {
        let mut touch = SetTouchEmulationEnabledParams::new(true);
        touch.max_touch_points = Some(5);
        page.execute(touch).await.map_err(err("emulating touch"))?;
    }
    if !identity.timezone.is_empty() {
        page.execute(SetTimezoneOverrideParams::new(identity.timezone.clone()))
            .await
            .map_err(err("setting the time zone"))?;
    }
    // A headless browser driven over CDP says `navigator.webdriver = true`.
    page.execute(SetAutomationOverrideParams::new(false))
        .await
        .map_err(err("clearing the automation flag"))?;
    Ok(())
}

/// The identity as CDP sets it for one page: User-Agent, Accept-Language (and with it
/// `navigator.languages`), `navigator.platform`, and client hints that match the User-Agent.
fn user_agent_override(identity: &Identity) -> SetUserAgentOverrideParams {
    let metadata = identity.client_hints().map(|h| {
        let brands = |full: bool| {
            h.brands
                .iter()
                .map(|(brand, major)| UserAgentBrandVersion {
                    brand: brand.clone(),
                    version: if full && brand != "Not_A Brand" {
                        h.full_version.clone()
                    } else {
                        major.clone()
                    },
                })
                .collect::<Vec<_>>()
        };
        UserAgentMetadata {
            brands: Some(brands(false)),
            full_version_list: Some(brands(true)),
            platform: h.platform.clone(),
            platform_version: h.platform_version.clone(),
            architecture: h.architecture.clone(),
            model: String::new(),
            mobile: h.mobile,
            bitness: Some("64".into()),
            wow64: Some(false),
            form_factors: None,
        }
    });
    SetUserAgentOverrideParams {
        user_agent: identity.user_agent.clone(),
        accept_language: Some(identity.languages()),
        platform: Some(identity.platform.clone()),
        user_agent_metadata: metadata,
    }
}

/// The window and screen the visitor has (headless Chromium's own screen is 800x600, smaller
/// than its window: a tell); a phone's at its pixel ratio, with mobile layout.
fn device_metrics(identity: &Identity) -> SetDeviceMetricsOverrideParams {
    let (w, h) = identity.viewport;
    let (sw, sh) = identity.screen;
    let scale = if identity.mobile { 3.0 } else { 1.0 };
    let mut m = SetDeviceMetricsOverrideParams::new(w as i64, h as i64, scale, identity.mobile);
    m.screen_width = Some(sw as i64);
    m.screen_height = Some(sh as i64);
    m
}
