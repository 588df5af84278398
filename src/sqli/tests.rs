//! Unit tests: attack table, benign table, random-bytes robustness, bounds.

use super::{Context, Detector, TOKENS_MAX};

use Context::{Bare as B, DoubleQuote as D, SingleQuote as S};

/// (payload, expected context).  Written from the families in the design
/// notes: tautologies, comments, UNION, stacked queries, ORDER BY probes,
/// blind/time functions, error-based functions, T-SQL, Oracle, PostgreSQL,
/// obfuscation (comments, executable comments, odd whitespace, case).
const ATTACKS: &[(&str, Context)] = &[
    // bare tautologies / boolean blind
    ("1 OR 1=1", B),
    ("1 AND 1=1--", B),
    ("1) OR (1=1", B),
    ("or 1=1--", B),
    ("OR true#", B),
    ("1 OR 'a'='a'", B),
    ("1 XOR 1=1", B),
    ("1 AND 2<=>2", B),
    ("1 AND 1 BETWEEN 0 AND 2", B),
    ("1 AND NULL IS NULL", B),
    ("1 AND 1=1 -- -", B),
    ("1 AND @@version LIKE '5%'", B),
    ("-1 OR x=x", B),
    ("1 && 1=1", B),
    // odd whitespace / comments as whitespace
    ("1\x0bOR\x0b1=1", B),
    ("1\u{a0}AND\u{a0}1=1", B),
    ("1\0OR\x001=1", B),
    ("1\u{a0}OR\u{a0}2>1", B),
    ("1/**/OR/**/1=1", B),
    // UNION
    ("-1 UNION SELECT 1,2,3--", B),
    ("1 UNION ALL SELECT NULL,NULL,NULL", B),
    ("1)) UNION SELECT username,password FROM users--", B),
    ("1/*!50000UNION*/ /*!50000SELECT*/ 1,2", B),
    ("1 UnIoN/**/sElEcT 1,concat(user(),0x3a,database())", B),
    ("1 UNION SELECT 'x' INTO OUTFILE '/var/www/s.php'", B),
    ("union select 1,2,3", B),
    // ORDER BY / GROUP BY probes
    ("1 ORDER BY 3", B),
    ("ORDER BY 5--", B),
    ("1 GROUP BY 1,2,3--", B),
    ("1 HAVING 1=1", B),
    // stacked queries
    ("1; DROP TABLE users", B),
    ("1;SELECT pg_sleep(5)--", B),
    ("1;INSERT INTO users VALUES(1,'a')", B),
    ("1;UPDATE users SET pw='x'", B),
    ("1;EXEC master..xp_cmdshell 'ping 127.0.0.1'--", B),
    ("1;WAITFOR DELAY '0:0:5'--", B),
    // time / blind functions
    ("1 AND SLEEP(5)", B),
    ("1 AND ELT(1=1,SLEEP(5))", B),
    ("1 AND MAKE_SET(1=1,SLEEP(3))", B),
    ("!SLEEP(5)", B),
    ("IIF(1=1,1,1/0)", B),
    ("IF(1=1,SLEEP(5),0)", B),
    ("1 OR BENCHMARK(10000000,MD5(1))#", B),
    ("pg_sleep(5)--", B),
    ("1 || pg_sleep(5)", B),
    ("1 WAITFOR DELAY '0:0:5'", B),
    ("1 AND (SELECT 1 FROM (SELECT SLEEP(5))a)", B),
    ("(SELECT * FROM (SELECT(SLEEP(5)))a)", B),
    ("1 RLIKE (SELECT (CASE WHEN (1=1) THEN 1 ELSE 0x28 END))", B),
    ("1 AND (CASE WHEN 1=1 THEN 1 ELSE 0 END)=1", B),
    (
        "1 AND ASCII(SUBSTRING((SELECT TOP 1 name FROM sysobjects),1,1))>64",
        B,
    ),
    ("1 AND MID(VERSION(),1,1)='5'", B),
    ("1 AND EXISTS(SELECT * FROM users)", B),
    ("1 AND 1 IN (SELECT 1)", B),
    // error based
    ("1 AND EXTRACTVALUE(1,CONCAT(0x7e,VERSION()))", B),
    ("1 AND UPDATEXML(1,CONCAT(0x7e,@@version),1)", B),
    ("1 AND 1=CONVERT(int,@@version)", B),
    ("1 AND 1=CAST((SELECT version()) AS int)", B),
    (
        "1 PROCEDURE ANALYSE(EXTRACTVALUE(1,CONCAT(0x3a,VERSION())),1)",
        B,
    ),
    ("1=user_name()", B),
    // concatenation / T-SQL / Oracle
    ("CHAR(65)||CHAR(66)", B),
    ("CHR(83)||CHR(69)||CHR(76)", B),
    ("DECLARE @x varchar(99) SET @x=0x73656c656374 EXEC(@x)", B),
    ("execute immediate 'sel'||'ect * from dual'", B),
    ("SELECT LOAD_FILE('/etc/passwd')", B),
    ("SELECT * FROM users WHERE id=1", B),
    // single-quote context
    ("' OR 1=1--", S),
    ("' OR '1'='1", S),
    ("1' or '1'='1", S),
    ("admin'--", S),
    ("admin' #", S),
    ("admin'/*", S),
    ("admin') --", S),
    ("' OR 1--", S),
    ("1' ORDER BY 1--+", S),
    ("' UNION SELECT NULL,NULL--", S),
    ("x' UNION SELECT @@version#", S),
    ("' AND 1=0 UNION ALL SELECT 'admin','pw'--", S),
    ("'; DROP TABLE users--", S),
    ("'; DELETE FROM users--", S),
    ("';SHUTDOWN--", S),
    ("';WAITFOR DELAY '0:0:5'--", S),
    ("';EXEC xp_cmdshell 'dir'--", S),
    ("' AND SLEEP(5) AND '1'='1", S),
    ("' OR SLEEP(5)='", S),
    ("' AND ELT(1=1,SLEEP(5))--", S),
    ("'='", S),
    ("') OR ('a'='a", S),
    ("')) OR (('x'))=(('x", S),
    ("%' AND 1=1 AND '%'='", S),
    ("x' AND EXTRACTVALUE(1,CONCAT(0x7e,USER()))--", S),
    ("' || pg_sleep(10) || '", S),
    ("'||(SELECT CHR(65))||'", S),
    ("'+(SELECT 1 FROM (SELECT SLEEP(5))a)+'", S),
    ("' AND 1=CONVERT(int,(SELECT @@version))--", S),
    ("' HAVING 1=1--", S),
    ("-2931' OR 6872=6872#", S),
    ("' or username like '%admin%'--", S),
    ("' INTO OUTFILE '/tmp/x.php'--", S),
    ("1'\x0bOR\x0b'a'='a", S),
    ("1' AND 1=(SELECT COUNT(*) FROM tabname); --", S),
    ("1' WHERE 1=1--", S),
    // double-quote context
    ("\" OR \"\"=\"", D),
    ("\" OR 1=1--", D),
    ("1\" AND SLEEP(5)#", D),
    ("admin\"--", D),
    ("\") OR (\"a\"=\"a", D),
    ("\" UNION SELECT 1,2--", D),
    ("\"; EXEC('SEL'+'ECT 1')--", D),
    // injected into other constructs: alias + WHERE, stray closers
    // (backtick, `*/`, `]`, `$$`), full-text mode, CASE, PL/SQL blocks
    ("1) AS x WHERE 6984=6984 OR NOT 6984=6984 -- -", B),
    ("-5211\")) as bkvr where 4082=4082 or 2323=8052", D),
    ("1` WHERE 9323=9323 UNION ALL SELECT NULL,NULL#", B),
    ("1*/ AND 9598=9598 /*", B),
    ("1]-(SELECT 0 WHERE 7533=7533 AND 7533=7533 )|[1", B),
    ("1$$ AND 'a'=REGEXP_SUBSTRING(REPEAT(LEFT(CRYPT_KEY('AES',NULL),0),500000000),NULL)", B),
    ("1' IN BOOLEAN MODE) AND 4595=4595#", S),
    ("1,(CASE WHEN 8260=8260 THEN 1 ELSE NULL END)", B),
    ("(7819=7819)*4548", B),
    ("1);BEGIN DBMS_LOCK.SLEEP(5); END--", B),
    ("1;CALL REGEXP_SUBSTRING(REPEAT(RIGHT(CHAR(3702),0),500000000),NULL)", B),
    ("1 ;IF(9152=9152) SELECT 9152 ELSE DROP FUNCTION x--", B),
    ("-5518' OR 1 GROUP BY CONCAT('q',(SELECT (CASE WHEN (1=1) THEN 1 ELSE 0 END)),'q',FLOOR(RAND(0)*2)) HAVING MIN(0)#", S),
    ("' group by userid having 1=1--", S),
    ("1' (SELECT (CASE WHEN (5451=5451) THEN 1 ELSE 2 END))", S),
    ("\\'; DROP TABLE users; --", S),
    ("' or ''-'", S),
    ("sleep(__TIME__)#", B),
    ("SELECT name FROM master..sysdatabases;", B),
    ("LOAD DATA INFILE '/etc/passwd' INTO TABLE t", B),
];

/// Benign values that must not be reported: prose, names, search phrases,
/// identifiers, encodings, technical strings.
const BENIGN: &[&str] = &[
    "hello world",
    "O'Brien",
    "d'Artagnan",
    "O'Reilly & Associates",
    "Chateau d'Yquem 1990",
    "L'Or\u{e9}al Paris",
    "N'Golo Kant\u{e9}",
    "Mc'Donald",
    "it's great -- really",
    "It's 5 o'clock -- time to go",
    "12345\"",
    "5'10\"",
    "6' 2\"",
    "how to prevent sql injection with union select in php",
    "what is sql injection?",
    "select the best option",
    "Select one from the list",
    "select all",
    "select *",
    "Union Select Committee",
    "union station",
    "European Union select committee report",
    "1 or 2 people",
    "2 or more",
    "10 and 20",
    "1 OR 2",
    "drop-down menu",
    "drop table",
    "Drop table leaf",
    "delete my account",
    "update profile",
    "insert coin",
    "exec summary",
    "execute order 66",
    "declare independence",
    "shutdown",
    "sleep",
    "sleep well tonight",
    "use sleep(5) in python",
    "time.sleep(5)",
    "Thread.sleep(1000)",
    "waitfor it",
    "benchmark results 2023",
    "order by price",
    "order by 2 days",
    "group by age",
    "having fun",
    "and/or",
    "AND",
    "or else",
    "or 1 more",
    "1 in 5",
    "between 1 and 5",
    "is null",
    "null",
    "true",
    "1=1",
    "john.doe@example.com",
    "first.last+tag@mail.example.org",
    "https://example.com/path?x=1&y=2",
    "/usr/local/bin/python3",
    "C:\\Program Files\\App\\app.exe",
    "../images/logo.png",
    "aGVsbG8gd29ybGQ=",
    "MTIzNDU2Nzg5MA==",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abc-_x",
    "{\"a\":1,\"b\":\"x\",\"c\":[1,2]}",
    "{'key': 'value', 'n': 1}",
    "1,234,567",
    "$19.99",
    "50% off",
    "2024-01-15",
    "2024-01-15T10:30:00Z",
    "Mon, 01 Jan 2024 10:00:00 GMT",
    "C#",
    "C++ and C#",
    "#fff",
    "#hashtag",
    "color: #fff; background: #000",
    "font-family: 'Arial', sans-serif",
    "1.2.3-rc1",
    "v1.2.3; build 45",
    "550e8400-e29b-41d4-a716-446655440000",
    "en-US,en;q=0.9",
    "text/html;charset=utf-8",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    "red; green; blue",
    "Rock 'n' roll",
    "rock'n'roll or jazz",
    "don't stop believin'",
    "the students' and teachers' union",
    "parents' or guardians' consent",
    "McDonald's or Wendy's",
    "the '80s and '90s",
    "I said 'yes' or 'no'",
    "He said \"hi\" and left",
    "'Hello' -- he said",
    "John's; Mary's",
    "I'm here; you're there",
    "Ben & Jerry's",
    "Tom & Jerry",
    "AT&T",
    "a && b",
    "true || false",
    "x := 5",
    "!important",
    "1e10",
    "0x1F",
    "-1",
    "+1 (555) 123-4567",
    "--verbose",
    "--",
    "foo--bar",
    "1--2",
    "'quoted'",
    "\"quoted\"",
    "(optional) and (required)",
    "a) first b) second",
    "Is 1=1?",
    "size>10 and color=red",
    "price<100",
    "count(3)",
    "max(1, 2)",
    "=SUM(A1:A10)",
    "=IF(A1>0,1,0)",
    "<b>bold</b>",
    "na\u{ef}ve caf\u{e9}",
    "\u{65e5}\u{672c}\u{8a9e}\u{306e}\u{30c6}\u{30ad}\u{30b9}\u{30c8}",
    "if (you want) to",
    "left join",
    "user_name",
    "p@ssw0rd!",
    "@username",
    "'",
    "\"",
    "''",
    "'--'",
    "'#'",
    // code and technical text that contains SQL-like pieces
    "sleep (a lot)",
    "in case when you are not sure then ask",
    "and found != 0 at line 998",
    "and f() returns NULL",
    "OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE)",
    "(e.g., leading \"-\").",
    "either empty or '-'.",
    "the word \"and\" or \"or\" here",
    "Rename \"select\" to \"_newselect\".",
    "\"select\"",
    "exec's",
    "execute 'autoconf' and './configure' anymore",
    "exec(\"print(1)\")",
    "; call register_dir(), then exit",
    "len(x[\"items\"]) == 0 and len(y[0]) == 1",
    "parser.add_argument('infile', nargs='?')",
    "getattr(select, 'PIPE_BUF', 512)",
    "the items' order by 3",
];

#[test]
fn attacks_are_detected_in_expected_context() {
    assert!(ATTACKS.len() >= 60);
    let mut d = Detector::new();
    let mut bad = Vec::new();
    for &(p, ctx) in ATTACKS {
        match d.detect(p.as_bytes()) {
            Some(f) if f.context == ctx => {}
            other => bad.push(format!("{p:?}: expected {ctx:?}, got {other:?}")),
        }
    }
    assert!(bad.is_empty(), "missed/wrong context:\n{}", bad.join("\n"));
}

#[test]
fn benign_values_are_not_reported() {
    assert!(BENIGN.len() >= 100);
    let mut d = Detector::new();
    let fps: Vec<String> = BENIGN
        .iter()
        .filter_map(|p| d.detect(p.as_bytes()).map(|f| format!("{p:?}: {f:?}")))
        .collect();
    assert!(fps.is_empty(), "false positives:\n{}", fps.join("\n"));
}

#[test]
fn finding_contents() {
    let mut d = Detector::new();
    let f = d.detect(b"' OR 1=1").expect("detected");
    assert_eq!(f.context, Context::SingleQuote);
    assert_eq!(f.fingerprint, "s&1o1");
    assert_eq!(f.tokens, "' OR 1=1");
    assert_eq!(f.context.name(), "single-quote");
    let f = d.detect(b"admin'--").expect("detected");
    assert_eq!(f.fingerprint, "sc");
    assert_eq!(f.tokens, "'--");
    let f = d.detect(b"-1 UNION ALL SELECT 1,2").expect("detected");
    assert_eq!(f.context.name(), "bare");
    assert_eq!(f.fingerprint, "1UE1,1");
    let f = d.detect(b"\" or 1=1 #").expect("detected");
    assert_eq!(f.context.name(), "double-quote");
    assert_eq!(f.fingerprint, "s&1o1c");
}

#[test]
fn tokens_are_bounded() {
    let mut d = Detector::new();
    let long_str = format!("' OR '{}'='{}", "a".repeat(500), "a".repeat(500));
    let nonprint = format!("' OR 1=1 --{}", "\u{1}\u{2}\u{3}".repeat(100));
    let wide = format!(
        "1 UNION SELECT {}",
        (0..300)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    for p in [long_str, nonprint, wide] {
        let f = d.detect(p.as_bytes()).expect("detected");
        assert!(
            f.tokens.len() <= TOKENS_MAX,
            "{} > {TOKENS_MAX}",
            f.tokens.len()
        );
        assert!(f.fingerprint.len() <= super::FINGERPRINT_LEN);
    }
    // Latin-1 NBSP (a lone 0xA0 byte) is whitespace too.
    assert!(d.detect(b"1\xa0AND\xa01=1").is_some());
    // Non-UTF-8 and control bytes are rendered escaped.
    let f = d.detect(b"1 OR\xff 1=1 OR \xfe1=1").map(|f| f.tokens);
    if let Some(t) = f {
        assert!(t.len() <= TOKENS_MAX);
        assert!(t.is_ascii());
    }
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[test]
fn random_bytes_never_panic() {
    // Bytes biased towards SQL-significant characters so the random inputs
    // exercise strings, comments, operators and keywords, not just noise.
    const ALPHABET: &[u8] =
        b"'\"`()-#/*!;,=<>|&@.0123456789xeE \t\n\x0b\x00\xa0\xc2\xffORANDSELECTUNIONsleep";
    const WORDS: &[&str] = &[
        " OR ",
        " AND ",
        "SELECT ",
        " UNION ALL ",
        "--",
        "/*!50000",
        "*/",
        "sleep(",
        "0x",
        " ORDER BY ",
        "WAITFOR DELAY ",
        "EXECUTE IMMEDIATE ",
        "DECLARE @",
        "'",
        "\"",
        "/*",
        "#",
        "IS NOT ",
        "NOT IN (",
        "@@version",
        "CASE WHEN ",
        "INTO OUTFILE ",
        "\\",
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut d = Detector::new();
    let mut buf = Vec::new();
    let mut hits = 0usize;
    for round in 0..30_000 {
        buf.clear();
        let len = (rng.next() % if round % 10 == 0 { 4096 } else { 96 }) as usize;
        while buf.len() < len {
            let r = rng.next();
            match r % 4 {
                0 => buf.push((r >> 8) as u8),
                1 => buf.extend_from_slice(WORDS[(r >> 8) as usize % WORDS.len()].as_bytes()),
                _ => buf.push(ALPHABET[(r >> 8) as usize % ALPHABET.len()]),
            }
        }
        buf.truncate(4096);
        if let Some(f) = d.detect(&buf) {
            hits += 1;
            assert!(f.tokens.len() <= TOKENS_MAX);
            assert!(!f.fingerprint.is_empty());
        }
    }
    // The generator is biased enough that some inputs must parse as SQL.
    assert!(hits > 0);
}

#[test]
fn long_inputs_stay_linear() {
    // Pathological repetitions; must finish quickly (no quadratic paths).
    let mut d = Detector::new();
    let cases = [
        "/**/".repeat(1024),
        "((((".repeat(1024),
        "'".repeat(4096),
        "\\".repeat(4096),
        "-- \n".repeat(1024),
        "1 OR ".repeat(800),
        "sleep(".repeat(680),
        "UNION ".repeat(680),
        "; ".repeat(2048),
        "/*!".repeat(1365),
    ];
    let t = std::time::Instant::now();
    for _ in 0..20 {
        for c in &cases {
            let _ = d.detect(c.as_bytes());
        }
    }
    assert!(t.elapsed().as_secs() < 5, "too slow: {:?}", t.elapsed());
}

/// Debug aid: `SQLI_DBG='value' cargo test dbg_env -- --nocapture` prints
/// the folded fingerprint of the value in each context.
#[test]
fn dbg_env() {
    let Ok(v) = std::env::var("SQLI_DBG") else {
        return;
    };
    for (name, q) in [("bare", None), ("sq", Some(b'\'')), ("dq", Some(b'"'))] {
        let mut raw = Vec::new();
        let mut folded = Vec::new();
        super::tokenize::tokenize(v.as_bytes(), q, &mut raw);
        super::fold::fold(&raw, v.as_bytes(), &mut folded);
        let fp: String = folded.iter().map(|t| t.kind.letter()).collect();
        println!(
            "{name}: {fp}  {:?}",
            folded.iter().map(|t| (t.kind, t.kw)).collect::<Vec<_>>()
        );
    }
    println!("{:?}", Detector::new().detect(v.as_bytes()));
}
