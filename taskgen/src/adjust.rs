//! The IMAGE suffix snippet added to the steps that stay on the cluster (TASKGEN.md §1.4).
//!
//! With `IMAGE_APPEND_PLATFORM=true` the remote step pushes to `$IMAGE-<platform>`, so
//! every other bash step must compute the same IMAGE before it uses it.

use std::sync::LazyLock;

use regex::Regex;

/// Sets IMAGE to `$IMAGE-<sanitized PLATFORM>` when IMAGE_APPEND_PLATFORM is true.
pub const ADJUST_IMAGE: &str = "if [ \"${IMAGE_APPEND_PLATFORM}\" == \"true\" ]; then\n  IMAGE=\"${IMAGE}-${PLATFORM//[^a-zA-Z0-9]/-}\"\n  export IMAGE\nfi\n";

/// A bash shebang plus the `set …` lines right after it.
static BASH_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^#!(/usr)?(/local)?/bin/(env )?bash(\n)+(set .*\n)*").expect("static regex")
});

/// Inserts [`ADJUST_IMAGE`] after the bash header of `script` (adding
/// `#!/bin/bash\nset -e\n` when there is none). Scripts with another interpreter
/// (a `#!` that is not bash) are returned unchanged.
pub fn inject_image_suffix(script: &str) -> String {
    let header = BASH_HEADER.find(script).map_or("", |m| m.as_str());
    let body = &script[header.len()..];
    if body.starts_with("#!") {
        return script.to_owned();
    }
    let header = if header.is_empty() {
        "#!/bin/bash\nset -e\n"
    } else {
        header
    };
    format!("{header}{ADJUST_IMAGE}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_without_shebang_gets_bash_header() {
        assert_eq!(
            inject_image_suffix("echo \"$IMAGE\"\n"),
            format!("#!/bin/bash\nset -e\n{ADJUST_IMAGE}echo \"$IMAGE\"\n")
        );
    }

    #[test]
    fn snippet_goes_after_shebang_and_set_lines() {
        assert_eq!(
            inject_image_suffix("#!/bin/bash\nset -e\n\necho hi\n"),
            format!("#!/bin/bash\nset -e\n{ADJUST_IMAGE}\necho hi\n")
        );
    }

    #[test]
    fn env_bash_with_several_set_lines_and_blank_lines_after_shebang() {
        assert_eq!(
            inject_image_suffix("#!/usr/bin/env bash\n\nset -euo pipefail\nset -x\necho\n"),
            format!("#!/usr/bin/env bash\n\nset -euo pipefail\nset -x\n{ADJUST_IMAGE}echo\n")
        );
        assert_eq!(
            inject_image_suffix("#!/usr/local/bin/bash\necho\n"),
            format!("#!/usr/local/bin/bash\n{ADJUST_IMAGE}echo\n")
        );
    }

    #[test]
    fn other_interpreters_are_untouched() {
        for script in [
            "#!/bin/python3\nprint('x')\n",
            "#!/bin/sh\necho\n",
            "#!/usr/bin/env python\n",
        ] {
            assert_eq!(inject_image_suffix(script), script);
        }
    }

    #[test]
    fn set_lines_not_at_the_top_stay_in_place() {
        assert_eq!(
            inject_image_suffix("#!/bin/bash\necho a\nset -e\n"),
            format!("#!/bin/bash\n{ADJUST_IMAGE}echo a\nset -e\n")
        );
    }
}
