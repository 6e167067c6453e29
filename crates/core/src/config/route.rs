//! What happens to a TaskRun of a given platform under a [`PoolConfig`].

use thiserror::Error;

use super::dynamic::{DynamicSettings, DynamicStrategy, Unsupported};
use super::host::{Host, HostName, HostState};
use super::problem::{Problem, Severity, Subject};
use super::{PoolConfig, Strategy};
use crate::platform::Platform;

/// How a platform's TaskRuns are served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// A local platform: write the Secret with `host: localhost`.
    Local,
    /// A static pool: allocate a slot through the ledger. The hosts are the
    /// platform's valid hosts that are not disabled (never empty).
    Pool(Vec<&'a Host>),
    /// A cloud VM per TaskRun (`dynamic-platforms`, `type: aws`), with these settings.
    Cloud(&'a DynamicSettings),
    /// No TaskRun of this platform can be served: write the error Secret with this text.
    Fail(RouteError),
}

/// Why a platform's TaskRuns cannot be served; the text says what the admin must fix.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RouteError {
    /// Listed under a cloud strategy or provider this controller does not implement.
    #[error(
        "platform {platform} is configured in host-config as a {strategy} platform \
         ({list_key}), and {why}; a cluster admin must serve {platform} with static hosts \
         (host.<name>.platform: {platform}) or remove it from {list_key}",
        list_key = strategy.list_key()
    )]
    UnsupportedStrategy {
        /// The platform.
        platform: Platform,
        /// Its strategy.
        strategy: DynamicStrategy,
        /// What is not supported.
        why: Unsupported,
    },
    /// A cloud platform whose settings are invalid.
    #[error(
        "platform {platform} is a {strategy} platform whose settings in host-config are \
         invalid, so no VM can be launched for it; a cluster admin must fix host-config: {}",
        .problems.join("; ")
    )]
    InvalidCloudSettings {
        /// The platform.
        platform: Platform,
        /// Its strategy.
        strategy: DynamicStrategy,
        /// `key: message` of each error.
        problems: Vec<String>,
    },
    /// Nothing in host-config mentions the platform.
    #[error(
        "no host in host-config serves platform {platform}; a cluster admin must add hosts for \
         it (host.<name>.platform: {platform}) or list it in local-platforms ({})",
        configured_list(.configured)
    )]
    UnknownPlatform {
        /// The platform.
        platform: Platform,
        /// Platforms the configuration does serve.
        configured: Vec<Platform>,
    },
    /// Hosts are configured for the platform, but every one of them is invalid.
    #[error(
        "every host configured for platform {platform} is excluded because of configuration \
         errors; a cluster admin must fix host-config: {}",
        .problems.join("; ")
    )]
    InvalidHosts {
        /// The platform.
        platform: Platform,
        /// `key: message` of each problem of those hosts.
        problems: Vec<String>,
    },
    /// Every valid host of the platform has `state: disabled`.
    #[error(
        "every host of platform {platform} is disabled in host-config ({}); a cluster admin \
         must set host.<name>.state to active for at least one of them",
        names(.hosts)
    )]
    AllHostsDisabled {
        /// The platform.
        platform: Platform,
        /// Its hosts.
        hosts: Vec<HostName>,
    },
}

fn configured_list(platforms: &[Platform]) -> String {
    if platforms.is_empty() {
        "host-config serves no platform at all".to_owned()
    } else {
        let list: Vec<&str> = platforms.iter().map(Platform::as_str).collect();
        format!("platforms served: {}", list.join(", "))
    }
}

fn names(hosts: &[HostName]) -> String {
    let list: Vec<&str> = hosts.iter().map(HostName::as_str).collect();
    list.join(", ")
}

pub(crate) fn route<'a>(config: &'a PoolConfig, platform: &Platform) -> Route<'a> {
    match config.strategy(platform) {
        Some(Strategy::Local) => Route::Local,
        Some(Strategy::Dynamic(strategy)) => {
            let Some(dynamic) = config.dynamic_platforms.get(platform) else {
                return Route::Fail(RouteError::UnknownPlatform {
                    platform: platform.clone(),
                    configured: config.platforms().into_iter().collect(),
                });
            };
            if let Some(why) = dynamic.unsupported() {
                return Route::Fail(RouteError::UnsupportedStrategy {
                    platform: platform.clone(),
                    strategy,
                    why,
                });
            }
            match &dynamic.settings {
                Some(settings) if settings.aws.is_some() => Route::Cloud(settings),
                _ => Route::Fail(RouteError::InvalidCloudSettings {
                    platform: platform.clone(),
                    strategy,
                    problems: config
                        .problems
                        .iter()
                        .filter(|p| {
                            p.severity == Severity::Error
                                && matches!(&p.subject, Subject::Platform(p) if p == platform.as_str())
                        })
                        .map(|p| format!("{}: {}", p.key, p.message))
                        .collect(),
                }),
            }
        }
        Some(Strategy::Static) => {
            let valid: Vec<&Host> = config.hosts_of(platform).collect();
            let usable: Vec<&Host> = valid
                .iter()
                .copied()
                .filter(|h| h.state != HostState::Disabled)
                .collect();
            if !usable.is_empty() {
                return Route::Pool(usable);
            }
            if !valid.is_empty() {
                return Route::Fail(RouteError::AllHostsDisabled {
                    platform: platform.clone(),
                    hosts: valid.iter().map(|h| h.name.clone()).collect(),
                });
            }
            let excluded: Vec<&str> = config
                .excluded_hosts
                .iter()
                .filter(|h| h.platform.as_ref() == Some(platform))
                .map(|h| h.name.as_str())
                .collect();
            let problems = config
                .problems
                .iter()
                .filter(|p| {
                    p.severity == Severity::Error
                        && matches!(&p.subject, Subject::Host(h) if excluded.contains(&h.as_str()))
                })
                .map(|p: &Problem| format!("{}: {}", p.key, p.message))
                .collect();
            Route::Fail(RouteError::InvalidHosts {
                platform: platform.clone(),
                problems,
            })
        }
        None => Route::Fail(RouteError::UnknownPlatform {
            platform: platform.clone(),
            configured: config.platforms().into_iter().collect(),
        }),
    }
}
