//! Simulated crashes for tests: [`point`] returns a [`SimulatedCrash`] error where a test armed it, so a test can
//! stop `fit` or `publish` exactly where a kill could land and check what a restart makes of the files left.
//! Outside `cfg(test)` it is `Ok(())` and compiles away.
//!
//! Returning an error is a faithful kill on these paths because nothing on the way out writes a file: no
//! buffered writer is flushed by `Drop`, no cleanup runs on error (each crash test checks the files it expects).

/// The error an armed [`point`] returns.
#[derive(Debug, thiserror::Error)]
#[error("simulated crash at `{0}` (test hook)")]
pub struct SimulatedCrash(pub String);

#[cfg(test)]
thread_local! {
    /// (point name, hits left before it fires). Per thread: tests run in parallel.
    static ARMED: std::cell::RefCell<Option<(String, usize)>> = const { std::cell::RefCell::new(None) };
}

/// Makes the `nth` (1-based) pass through `name` on this thread fail.
#[cfg(test)]
pub fn arm(name: &str, nth: usize) {
    assert!(nth >= 1, "nth is 1-based");
    ARMED.with(|a| *a.borrow_mut() = Some((name.to_string(), nth)));
}

/// Clears what [`arm`] set.
#[cfg(test)]
pub fn disarm() {
    ARMED.with(|a| *a.borrow_mut() = None);
}

/// A place where a kill could land; fails only when a test armed it.
#[inline]
pub fn point(name: &str) -> Result<(), SimulatedCrash> {
    #[cfg(test)]
    {
        let fire = ARMED.with(|a| {
            let mut a = a.borrow_mut();
            match a.as_mut() {
                Some((armed, left)) if armed == name => {
                    *left -= 1;
                    if *left == 0 {
                        *a = None;
                        return true;
                    }
                    false
                }
                _ => false,
            }
        });
        if fire {
            return Err(SimulatedCrash(name.to_string()));
        }
    }
    #[cfg(not(test))]
    let _ = name;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_armed_point_fires_once_at_its_nth_pass() {
        super::arm("p", 2);
        assert!(super::point("q").is_ok());
        assert!(super::point("p").is_ok());
        assert_eq!(super::point("p").unwrap_err().0, "p");
        assert!(super::point("p").is_ok(), "fires once");
    }
}
