//! The throwaway-user test → the EXPIRY-TIME cell and findings with advice.

use crate::doctor::facts::UserTest;
use crate::doctor::report::{Cell, Check, Finding, Status};
use crate::remote::LoginOutcome;

pub(super) fn user_test_cell(test: &UserTest, problems: &mut Vec<Finding>) -> Cell {
    let user = &test.user;
    let fail = |problems: &mut Vec<Finding>, text: &str, message: String| {
        problems.push(Finding::failure(Check::ExpiryTime, message));
        Cell::new(Status::Fail, text)
    };
    let cell = match (
        &test.provision_expired,
        &test.expired_login,
        &test.provision_valid,
        &test.valid_login,
    ) {
        (Err(e), ..) => fail(
            problems,
            "no user",
            format!(
                "creating the throwaway user {user} failed, so provisioning for builds fails \
                 too: {e}"
            ),
        ),
        (Ok(()), Some(Ok(LoginOutcome::Accepted)), ..) => fail(
            problems,
            "IGNORED",
            "sshd accepted a key whose expiry-time passed a day ago, so keys issued to builds \
             never expire on this host; check the host's clock (`date -u`) and that sshd reads \
             ~/.ssh/authorized_keys with its options (OpenSSH 7.7 or later)"
                .to_owned(),
        ),
        (Ok(()), Some(Err(e)), ..) => fail(
            problems,
            "error",
            format!("could not check that an expired key is refused: {e}"),
        ),
        (Ok(()), Some(Ok(LoginOutcome::Refused)), Some(Err(e)), _) => fail(
            problems,
            "error",
            format!("giving the throwaway user {user} a valid key failed: {e}"),
        ),
        (
            Ok(()),
            Some(Ok(LoginOutcome::Refused)),
            Some(Ok(())),
            Some(Ok(LoginOutcome::Accepted)),
        ) => Cell::new(Status::Pass, "honoured"),
        (
            Ok(()),
            Some(Ok(LoginOutcome::Refused)),
            Some(Ok(())),
            Some(Ok(LoginOutcome::Refused)),
        ) => fail(
            problems,
            "no login",
            "sshd refused the throwaway user's valid key, so builds cannot log in to this \
                 host; check sshd_config (AllowUsers, AllowGroups, DenyUsers, \
                 AuthorizedKeysFile) and that its OpenSSH understands expiry-time (7.7 or \
                 later); the host's sshd log says why"
                .to_owned(),
        ),
        (Ok(()), Some(Ok(LoginOutcome::Refused)), Some(Ok(())), Some(Err(e))) => fail(
            problems,
            "error",
            format!("could not log in as the throwaway user {user}: {e}"),
        ),
        _ => fail(
            problems,
            "error",
            "the throwaway-user test stopped early; run doctor again".to_owned(),
        ),
    };
    let leftover = format!(
        "remove it on the host with `userdel --remove {user}` (the controller's reaper also \
         removes leftover build users)"
    );
    match (&test.cleanup, &test.still_present) {
        (Err(e), _) => problems.push(Finding::failure(
            Check::Cleanup,
            format!("removing the throwaway user {user} failed: {e}; if it exists, {leftover}"),
        )),
        (Ok(()), Some(Ok(true))) => problems.push(Finding::failure(
            Check::Cleanup,
            format!(
                "the throwaway user {user} is still on the host after cleanup, so build users \
                 would leak too; {leftover}"
            ),
        )),
        (Ok(()), Some(Err(e))) => problems.push(Finding::failure(
            Check::Cleanup,
            format!("could not check that the throwaway user {user} is gone: {e}"),
        )),
        (Ok(()), Some(Ok(false)) | None) => {}
    }
    cell
}
