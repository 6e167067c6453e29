//! The SSH side of doctor: probe a host as its admin, then run the throwaway-user test.
//!
//! Every step has the host's deadline; removing the throwaway user gets a budget of its
//! own, so a user created just before the deadline is still removed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::facts::{Contact, StepError, UserTest};
use super::known_hosts::SnapshotKnownHosts;
use super::verdict::host_key_verified_before;
use crate::remote::error::SshStep;
use crate::remote::{
    AdminKey, HostKeyPolicy, HostTarget, KnownHosts, ProvisionRequest, RemoteError, SshPool,
    fingerprint, generate,
};
use crate::remote::{InvalidRequest, KeyError};
use mpc_core::config::Host;
use mpc_core::host_work::script::Operation;
use mpc_core::naming::UserName;

/// Name prefix of the made-up TaskRun the throwaway user is named after.
pub const DOCTOR_TASKRUN_PREFIX: &str = "mpc-doctor-";

/// How long before now the "expired" key expired: more than any plausible clock skew
/// between this machine and the host.
const EXPIRED_SINCE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long the valid key is valid; doctor removes the user long before.
const VALID_FOR: Duration = Duration::from_secs(10 * 60);

/// The throwaway user: named after the TaskRun `mpc-doctor-<suffix>` in the controller
/// namespace, which never exists, so the controller's reaper removes a leftover.
pub fn doctor_user(namespace: &str, suffix: u32) -> UserName {
    UserName::for_taskrun(&format!("{DOCTOR_TASKRUN_PREFIX}{suffix:08x}"), namespace)
}

/// How doctor checks `host`'s key: the pin, else the remembered key from `store` (which
/// only notes a first key, never writes).
fn policy(host: &Host, store: &Arc<SnapshotKnownHosts>) -> HostKeyPolicy {
    match &host.host_key {
        Some(pin) => HostKeyPolicy::Strict(pin.public_key().clone()),
        None => {
            let store: Arc<dyn KnownHosts> = store.clone();
            HostKeyPolicy::AcceptNew(store)
        }
    }
}

/// The fingerprint of the key `host` was checked against (so, after a successful check,
/// the key it presented).
fn checked_key(host: &Host, store: &SnapshotKnownHosts) -> Option<String> {
    match &host.host_key {
        Some(pin) => Some(fingerprint(pin.public_key())),
        None => store.key_for(host.name.as_str()).map(|k| fingerprint(&k)),
    }
}

/// Doctor could not prepare the keys or requests of a check on this machine.
#[derive(Debug, thiserror::Error)]
enum LocalError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Request(#[from] InvalidRequest),
}

/// A private key nobody authorized, for a handshake when the admin key is unusable.
fn throwaway_key() -> Result<AdminKey, LocalError> {
    let pair = generate()?;
    Ok(AdminKey::parse(pair.private_key_openssh().as_bytes())?)
}

/// Runs `step` until `deadline`; running out of time is a [`RemoteError::Timeout`].
async fn within<T>(
    deadline: Instant,
    limit: Duration,
    host: &str,
    phase: SshStep,
    step: impl Future<Output = Result<T, RemoteError>>,
) -> Result<T, RemoteError> {
    tokio::time::timeout_at(deadline, step)
        .await
        .unwrap_or_else(|_| {
            Err(RemoteError::Timeout {
                host: host.to_owned(),
                phase,
                after: limit,
            })
        })
}

/// Probes `host` within `timeout`: as the admin when `admin_key` is usable (then the
/// throwaway-user test follows), otherwise only the handshake.
pub async fn probe_host(
    pool: &SshPool,
    store: &Arc<SnapshotKnownHosts>,
    host: &Host,
    admin_key: Option<&AdminKey>,
    namespace: &str,
    timeout: Duration,
) -> (Contact, Option<UserTest>) {
    let deadline = Instant::now() + timeout;
    let name = host.name.as_str();
    let login_key = match admin_key {
        Some(key) => key.clone(),
        None => match throwaway_key() {
            Ok(key) => key,
            Err(why) => {
                let error = RemoteError::Protocol {
                    host: name.to_owned(),
                    reason: format!("cannot generate a key for the handshake: {why}"),
                };
                return (
                    Contact::Failed {
                        error,
                        host_key: None,
                    },
                    None,
                );
            }
        },
    };
    let target = HostTarget {
        name: name.to_owned(),
        address: host.address.clone(),
        port: host.port,
        admin_user: host.user.clone(),
        admin_key: login_key.clone(),
        host_key_policy: policy(host, store),
    };
    let failed = |error: RemoteError| Contact::Failed {
        host_key: if host_key_verified_before(&error) {
            checked_key(host, store)
        } else {
            None
        },
        error,
    };

    if admin_key.is_none() {
        let started = Instant::now();
        let login = pool.try_login(&target, &host.user, &login_key);
        return match within(deadline, timeout, name, SshStep::Connect, login).await {
            // Accepted would mean sshd takes any key; it still proves the handshake.
            Ok(_) => (
                Contact::Handshake {
                    round_trip: started.elapsed(),
                    host_key: checked_key(host, store).unwrap_or_else(|| "(unknown)".into()),
                },
                None,
            ),
            Err(error) => (failed(error), None),
        };
    }

    match within(
        deadline,
        timeout,
        name,
        SshStep::Connect,
        pool.probe(&target),
    )
    .await
    {
        Ok(probe) => {
            let contact = Contact::Probed {
                round_trip: probe.round_trip,
                host_key: fingerprint(&probe.host_key),
                privilege: probe.privilege,
                host: probe.facts,
            };
            let user = doctor_user(namespace, rand::random());
            let test = user_test(pool, &target, host, user, deadline, timeout).await;
            (contact, Some(test))
        }
        Err(error) => (failed(error), None),
    }
}

/// The two provisioning requests (expired key, then valid key) and the login key.
fn requests(
    user: &UserName,
    host: &Host,
) -> Result<(ProvisionRequest, ProvisionRequest, AdminKey), LocalError> {
    let pair = generate()?;
    let login = AdminKey::parse(pair.private_key_openssh().as_bytes())?;
    let now = SystemTime::now();
    let expired = ProvisionRequest::new(
        user.clone(),
        pair.public_key(),
        now - EXPIRED_SINCE,
        &host.sudo_commands,
    )?;
    let valid = ProvisionRequest::new(
        user.clone(),
        pair.public_key(),
        now + VALID_FOR,
        &host.sudo_commands,
    )?;
    Ok((expired, valid, login))
}

/// Creates `user` with an expired key (its login must be refused), gives it a valid
/// key (its login must work), removes it and checks it is gone. The user gets the host's
/// sudo commands, like a build, so `visudo` is exercised too.
async fn user_test(
    pool: &SshPool,
    target: &HostTarget,
    host: &Host,
    user: UserName,
    deadline: Instant,
    limit: Duration,
) -> UserTest {
    let name = target.name.as_str();
    let (expired, valid, login_key) = match requests(&user, host) {
        Ok(requests) => requests,
        Err(why) => {
            return UserTest {
                user,
                provision_expired: Err(StepError::Local(why.to_string())),
                expired_login: None,
                provision_valid: None,
                valid_login: None,
                cleanup: Ok(()),
                still_present: None,
            };
        }
    };
    let remote = StepError::Remote;
    let provision = SshStep::Command(Operation::Provision);
    let login = || pool.try_login(target, user.as_str(), &login_key);

    let provision_expired = within(
        deadline,
        limit,
        name,
        provision,
        pool.provision(target, &expired),
    )
    .await
    .map(drop)
    .map_err(remote);
    let mut expired_login = None;
    let mut provision_valid = None;
    let mut valid_login = None;
    if provision_expired.is_ok() {
        let outcome = within(deadline, limit, name, SshStep::Connect, login())
            .await
            .map_err(remote);
        let refused = outcome == Ok(crate::remote::LoginOutcome::Refused);
        expired_login = Some(outcome);
        if refused {
            let rekeyed = within(
                deadline,
                limit,
                name,
                provision,
                pool.provision(target, &valid),
            )
            .await
            .map(drop)
            .map_err(remote);
            if rekeyed.is_ok() {
                valid_login = Some(
                    within(deadline, limit, name, SshStep::Connect, login())
                        .await
                        .map_err(remote),
                );
            }
            provision_valid = Some(rekeyed);
        }
    }

    // Provisioning may have got partway even when it failed or timed out: always clean
    // up, with a budget of its own.
    let cleanup_deadline = Instant::now() + limit;
    let cleanup_phase = SshStep::Command(Operation::Cleanup);
    let cleanup = within(
        cleanup_deadline,
        limit,
        name,
        cleanup_phase,
        pool.cleanup(target, &user),
    )
    .await
    .map(drop)
    .map_err(remote);
    let still_present = if cleanup.is_ok() {
        let listed = within(
            cleanup_deadline,
            limit,
            name,
            SshStep::Command(Operation::ListUsers),
            pool.list_users(target),
        )
        .await;
        Some(
            listed
                .map(|users| users.iter().any(|u| u.name == user))
                .map_err(remote),
        )
    } else {
        None
    };
    UserTest {
        user,
        provision_expired,
        expired_login,
        provision_valid,
        valid_login,
        cleanup,
        still_present,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throwaway_user_is_a_build_user_of_a_made_up_taskrun() {
        let user = doctor_user("multi-platform-controller", 0x2a);
        assert_eq!(
            user,
            UserName::for_taskrun("mpc-doctor-0000002a", "multi-platform-controller")
        );
        assert_ne!(user, doctor_user("multi-platform-controller", 0x2b));
        assert_ne!(user, doctor_user("other-namespace", 0x2a));
    }
}
