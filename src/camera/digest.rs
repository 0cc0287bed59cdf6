//! HTTP Digest authentication, client side (RFC 7616, answering RFC 2617 and RFC 2069 servers too).
//!
//! Some camera systems (Axis Camera Station, Nx Witness in some setups) take only Digest on their HTTP APIs and
//! refuse Basic credentials. Written by hand on the RustCrypto hashes because no well-kept crate does the client
//! side.
//!
//! The caller sends a request, reads the `WWW-Authenticate` headers of the 401 with [`pick`], and sends again
//! with [`Challenge::authorization`]; it keeps the challenge for later requests (the nonce count goes up) until
//! the server answers 401 again. A refused answer to a kept challenge is answered once more with the new one (the
//! nonce expired, [`Challenge::is_stale`], or a restarted server forgot it); only a refused answer to a fresh
//! challenge means bad credentials.

use std::fmt::Write as _;

use md5::Md5;
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    fn from_name(name: &str) -> Result<Algorithm, String> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            format!(
                "the server asks for Digest algorithm {name:?}, which tillmark does not support \
                 (it does MD5, MD5-sess, SHA-256 and SHA-256-sess)"
            )
        })
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Servers list their challenges in no promised order; MD5 is the one RFC 7616 keeps only for old clients.
    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => format!("{:x}", Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => format!("{:x}", Sha256::digest(data)),
        }
    }
}

/// One Digest challenge, kept between requests because the server counts the uses of its nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Algorithm,
    /// `false` for RFC 2069 servers that offer no `qop`: their response covers neither nonce count nor cnonce.
    qop_auth: bool,
    stale: bool,
    /// Uses so far; `nc` in the header is the next one.
    uses: u32,
}

impl Challenge {
    /// The strongest Digest challenge in one `WWW-Authenticate` value (which may also hold other schemes).
    #[cfg(test)]
    pub fn parse(value: &str) -> Result<Challenge, String> {
        pick([value])
            .unwrap_or_else(|| Err(format!("no Digest challenge in WWW-Authenticate {value:?}")))
    }

    /// The server refused only because its nonce expired: the credentials were right, so send again with this
    /// challenge instead of reporting them as wrong.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// The `Authorization` header value for one request; `uri` is the request-target as sent (path and query).
    pub fn authorization(
        &mut self,
        method: &str,
        uri: &str,
        username: &str,
        password: &str,
    ) -> String {
        let cnonce = format!("{:032x}", rand::random::<u128>());
        self.authorization_with_cnonce(method, uri, username, password, &cnonce)
    }

    fn authorization_with_cnonce(
        &mut self,
        method: &str,
        uri: &str,
        username: &str,
        password: &str,
        cnonce: &str,
    ) -> String {
        let alg = self.algorithm;
        let nonce = &self.nonce;
        let mut ha1 = alg.hash(&format!("{username}:{}:{password}", self.realm));
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        let mut header = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, algorithm={}",
            quote(username),
            quote(&self.realm),
            quote(nonce),
            quote(uri),
            alg.name()
        );
        if self.qop_auth {
            // `nc` has 8 hex digits; no server keeps a nonce for 2^32 requests, so wrapping only avoids a panic.
            self.uses = self.uses.wrapping_add(1);
            let nc = format!("{:08x}", self.uses);
            if alg.is_sess() {
                ha1 = alg.hash(&format!("{ha1}:{nonce}:{cnonce}"));
            }
            let response = alg.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
            let _ = write!(
                header,
                ", response=\"{response}\", qop=auth, nc={nc}, cnonce={}",
                quote(cnonce)
            );
        } else {
            let response = alg.hash(&format!("{ha1}:{nonce}:{ha2}"));
            let _ = write!(header, ", response=\"{response}\"");
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(header, ", opaque={}", quote(opaque));
        }
        header
    }

    fn from_params(params: &[(String, String)]) -> Result<Challenge, String> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let realm = get("realm").ok_or("the Digest challenge has no realm")?;
        let nonce = get("nonce").ok_or("the Digest challenge has no nonce")?;
        let algorithm = get("algorithm").map_or(Ok(Algorithm::Md5), Algorithm::from_name)?;
        let qop_auth = match get("qop") {
            None => false,
            Some(offered)
                if offered
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth")) =>
            {
                true
            }
            // auth-int hashes the request body, which the callers' request builders do not hand over.
            Some(offered) => {
                return Err(format!(
                    "the server offers Digest qop {offered:?} only; tillmark does qop=auth, not auth-int"
                ));
            }
        };
        if algorithm.is_sess() && !qop_auth {
            return Err(format!(
                "the Digest challenge asks for {} without qop, which has no cnonce to hash",
                algorithm.name()
            ));
        }
        // `userhash` is not read: hashing the username is the client's option, and a plain one is always accepted.
        Ok(Challenge {
            realm: realm.to_string(),
            nonce: nonce.to_string(),
            opaque: get("opaque").map(str::to_string),
            algorithm,
            qop_auth,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
            uses: 0,
        })
    }
}

/// The strongest Digest challenge among a response's `WWW-Authenticate` values: `None` if none is Digest, the
/// first error if every Digest challenge is unusable (or a value cannot be read).
pub fn pick<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Result<Challenge, String>> {
    let mut best: Option<Challenge> = None;
    let mut first_error = None;
    for value in headers {
        let challenges = match challenges(value) {
            Ok(c) => c,
            Err(e) => {
                first_error.get_or_insert(format!("cannot read WWW-Authenticate {value:?}: {e}"));
                continue;
            }
        };
        for (_, params) in challenges
            .iter()
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Digest"))
        {
            match Challenge::from_params(params) {
                Ok(c)
                    if best
                        .as_ref()
                        .is_none_or(|b| c.algorithm.strength() > b.algorithm.strength()) =>
                {
                    best = Some(c)
                }
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    best.map(Ok).or(first_error.map(Err))
}

/// Scheme, then parameters with lowercased names and unquoted values, per challenge.
type RawChallenge = (String, Vec<(String, String)>);

/// Splits a `WWW-Authenticate` value into its challenges (RFC 9110 section 11.6.1): one value may carry several,
/// and a comma separates both parameters and challenges, so a new challenge shows only as a token without `=`.
fn challenges(value: &str) -> Result<Vec<RawChallenge>, String> {
    let mut lx = Lexer { rest: value };
    let mut out = Vec::new();
    loop {
        lx.skip_separators();
        if lx.rest.is_empty() {
            return Ok(out);
        }
        let scheme = lx.token();
        if scheme.is_empty() {
            return Err(lx.unexpected());
        }
        lx.skip_whitespace();
        lx.skip_token68();
        let mut params = Vec::new();
        loop {
            lx.skip_separators();
            let before = lx.rest;
            let name = lx.token();
            if name.is_empty() {
                if lx.rest.is_empty() {
                    break;
                }
                return Err(lx.unexpected());
            }
            lx.skip_whitespace();
            if !lx.eat('=') {
                lx.rest = before;
                break;
            }
            lx.skip_whitespace();
            let value = if lx.eat('"') {
                lx.quoted()?
            } else {
                lx.token().to_string()
            };
            params.push((name.to_ascii_lowercase(), value));
        }
        out.push((scheme.to_string(), params));
    }
}

const WHITESPACE: [char; 4] = [' ', '\t', '\r', '\n'];

struct Lexer<'a> {
    rest: &'a str,
}

impl<'a> Lexer<'a> {
    fn skip_whitespace(&mut self) {
        self.rest = self.rest.trim_start_matches(WHITESPACE);
    }

    fn skip_separators(&mut self) {
        self.rest = self
            .rest
            .trim_start_matches(|c| WHITESPACE.contains(&c) || c == ',');
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn token(&mut self) -> &'a str {
        let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        let end = self.rest.find(|c| !is_tchar(c)).unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        token
    }

    /// Other schemes (Negotiate, Bearer) may carry a token68 instead of parameters; it would otherwise be misread
    /// as the start of a parameter, or of the next challenge.
    fn skip_token68(&mut self) {
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-._~+/".contains(c)))
            .unwrap_or(self.rest.len());
        if end == 0 {
            return;
        }
        let after = self.rest[end..].trim_start_matches('=');
        let next = after.trim_start_matches(WHITESPACE);
        if next.is_empty() || next.starts_with(',') {
            self.rest = after;
        }
    }

    /// After the opening quote.
    fn quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 1..];
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("a quoted string is not closed".to_string())
    }

    fn unexpected(&self) -> String {
        format!(
            "unexpected {:?}",
            self.rest.chars().take(20).collect::<String>()
        )
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC7616_SHA256: &str = "Digest\r\n    realm=\"http-auth@example.org\",\r\n    qop=\"auth, auth-int\",\r\n    \
        algorithm=SHA-256,\r\n    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n    \
        opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    const RFC7616_MD5: &str = "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=MD5, \
        nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const RFC2617: &str = "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    fn param<'h>(header: &'h str, name: &str) -> &'h str {
        let start = header.find(&format!(" {name}=")).unwrap() + name.len() + 2;
        let rest = &header[start..];
        rest[..rest.find(',').unwrap_or(rest.len())].trim_matches('"')
    }

    /// The answer of RFC 2617's example user ("Circle Of Life") with its cnonce.
    fn rfc2617_answer(challenge: &mut Challenge) -> String {
        challenge.authorization_with_cnonce(
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
        )
    }

    /// The answer of RFC 7616's example user ("Circle of Life") with its cnonce.
    fn rfc7616_answer(challenge: &mut Challenge) -> String {
        challenge.authorization_with_cnonce(
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            RFC7616_CNONCE,
        )
    }

    #[test]
    fn rfc7616_sha256_example() {
        let mut c = Challenge::parse(RFC7616_SHA256).unwrap();
        let header = rfc7616_answer(&mut c);
        assert_eq!(
            header,
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", uri=\"/dir/index.html\", algorithm=SHA-256, \
             response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", qop=auth, nc=00000001, \
             cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        );
    }

    #[test]
    fn rfc7616_md5_example() {
        let mut c = Challenge::parse(RFC7616_MD5).unwrap();
        let header = rfc7616_answer(&mut c);
        assert_eq!(
            param(&header, "response"),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        assert_eq!(param(&header, "algorithm"), "MD5");
    }

    #[test]
    fn rfc2617_example() {
        let mut c = Challenge::parse(RFC2617).unwrap();
        assert_eq!(
            rfc2617_answer(&mut c),
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             uri=\"/dir/index.html\", algorithm=MD5, response=\"6629fae49393a05397450978507c4ef1\", qop=auth, \
             nc=00000001, cnonce=\"0a4f113b\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
        );
    }

    #[test]
    fn nonce_count_goes_up_with_each_use() {
        let mut c = Challenge::parse(RFC2617).unwrap();
        assert_eq!(param(&rfc2617_answer(&mut c), "nc"), "00000001");
        let second = rfc2617_answer(&mut c);
        assert_eq!(param(&second, "nc"), "00000002");
        assert_eq!(
            param(&second, "response"),
            "15b6bb427e3fecd23a43cb702ce447d5"
        );
        for _ in 0..13 {
            rfc2617_answer(&mut c);
        }
        assert_eq!(param(&rfc2617_answer(&mut c), "nc"), "00000010");
    }

    #[test]
    fn without_qop_answers_like_rfc_2069() {
        let mut c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"",
        )
        .unwrap();
        let expected = "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
            nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", algorithm=MD5, \
            response=\"670fd8c2df070c60b045671b8b24ff02\"";
        assert_eq!(rfc2617_answer(&mut c), expected);
        assert_eq!(rfc2617_answer(&mut c), expected, "no nonce count to go up");
    }

    #[test]
    fn sess_algorithms_hash_the_cnonce_into_ha1() {
        let mut md5 =
            Challenge::parse(&RFC2617.replace("Digest ", "Digest algorithm=MD5-sess, ")).unwrap();
        assert_eq!(
            param(&rfc2617_answer(&mut md5), "response"),
            "8e3825c57e897f5a0dec6c2d4e5059d0"
        );
        let mut sha = Challenge::parse(&RFC7616_SHA256.replace("SHA-256", "sha-256-SESS")).unwrap();
        let header = rfc7616_answer(&mut sha);
        assert_eq!(
            param(&header, "response"),
            "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7"
        );
        assert_eq!(param(&header, "algorithm"), "SHA-256-sess");
    }

    #[test]
    fn quoted_values_keep_commas_and_escaped_quotes() {
        let mut c = Challenge::parse(
            "digest REALM=\"Cam \\\"A\\\", hall\",nonce=dcd98b7102dd2f0e8b11d0f600bfb0c093 , qop=auth,algorithm=md5",
        )
        .unwrap();
        let header = c.authorization_with_cnonce(
            "POST",
            "/api/bookmarks?camera=3",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
        );
        assert_eq!(
            header,
            "Digest username=\"Mufasa\", realm=\"Cam \\\"A\\\", hall\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             uri=\"/api/bookmarks?camera=3\", algorithm=MD5, response=\"870f3bc0a822213de36c0887b85ed158\", \
             qop=auth, nc=00000001, cnonce=\"0a4f113b\""
        );
    }

    #[test]
    fn stale_and_userhash() {
        assert!(!Challenge::parse(RFC2617).unwrap().is_stale());
        let c = Challenge::parse(&format!(
            "{RFC2617}, stale=TRUE, userhash=true, charset=UTF-8"
        ))
        .unwrap();
        assert!(c.is_stale());
        assert!(
            !Challenge::parse(&format!("{RFC2617}, stale=false"))
                .unwrap()
                .is_stale()
        );
    }

    #[test]
    fn pick_skips_other_schemes_and_prefers_sha256() {
        let basic = "Basic realm=\"http-auth@example.org\"";
        let chosen = pick([basic, RFC7616_MD5, RFC7616_SHA256, "Negotiate"])
            .unwrap()
            .unwrap();
        assert_eq!(chosen.algorithm, Algorithm::Sha256);
        let chosen = pick([RFC7616_SHA256, RFC7616_MD5]).unwrap().unwrap();
        assert_eq!(chosen.algorithm, Algorithm::Sha256);
        // Of equal strength, the first offered.
        let chosen = pick([RFC7616_MD5, RFC2617]).unwrap().unwrap();
        assert_eq!(chosen.realm, "http-auth@example.org");
        assert_eq!(pick([basic, "Bearer abc+/==", "Negotiate"]), None);
        assert_eq!(pick([]), None);
    }

    #[test]
    fn one_value_may_hold_several_challenges() {
        let value = format!(
            "Basic realm=\"a, b\", Negotiate YII=, {RFC7616_MD5}, {}",
            RFC7616_SHA256.replace("\r\n", "")
        );
        let c = Challenge::parse(&value).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(
            c.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
    }

    #[test]
    fn an_unusable_challenge_is_passed_over_when_a_usable_one_is_offered() {
        let sha512 = RFC7616_SHA256.replace("SHA-256", "SHA-512-256");
        let chosen = pick([sha512.as_str(), RFC7616_MD5]).unwrap().unwrap();
        assert_eq!(chosen.algorithm, Algorithm::Md5);
        assert_eq!(
            pick([sha512.as_str()]).unwrap().unwrap_err(),
            "the server asks for Digest algorithm \"SHA-512-256\", which tillmark does not support \
             (it does MD5, MD5-sess, SHA-256 and SHA-256-sess)"
        );
    }

    #[test]
    fn clear_errors() {
        let err = |value: &str| Challenge::parse(value).unwrap_err();
        assert_eq!(
            err("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
            "the server offers Digest qop \"auth-int\" only; tillmark does qop=auth, not auth-int"
        );
        assert_eq!(
            err("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess"),
            "the Digest challenge asks for MD5-sess without qop, which has no cnonce to hash"
        );
        assert_eq!(
            err("Digest realm=\"r\""),
            "the Digest challenge has no nonce"
        );
        assert_eq!(
            err("Digest nonce=\"n\""),
            "the Digest challenge has no realm"
        );
        assert_eq!(
            err("Basic realm=\"r\""),
            "no Digest challenge in WWW-Authenticate \"Basic realm=\\\"r\\\"\""
        );
        assert_eq!(
            err("Digest realm=\"r, nonce=n"),
            "cannot read WWW-Authenticate \"Digest realm=\\\"r, nonce=n\": a quoted string is not closed"
        );
        assert_eq!(
            err("Digest realm=\"r\" \"n\""),
            "cannot read WWW-Authenticate \"Digest realm=\\\"r\\\" \\\"n\\\"\": unexpected \"\\\"n\\\"\""
        );
    }

    #[test]
    fn each_authorization_has_a_fresh_cnonce() {
        let mut c = Challenge::parse(RFC2617).unwrap();
        let first = c.authorization("GET", "/dir/index.html", "Mufasa", "Circle Of Life");
        let second = c.authorization("GET", "/dir/index.html", "Mufasa", "Circle Of Life");
        let (a, b) = (param(&first, "cnonce"), param(&second, "cnonce"));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
        assert_eq!(param(&second, "nc"), "00000002");
    }
}
