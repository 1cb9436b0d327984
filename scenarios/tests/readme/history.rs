use groundhog_sim::checker::Counter;
async fn drive(ctx: groundhog_sim::Driver) -> Result<(), groundhog_sim::Violation> {
    let history = ctx.history(); // clone it into node programs
    let op = history.invoke("client1", "counter", "add", 1i64);
    // ... send the increment; on the answer:
    history.ok(op, groundhog_sim::Value::Nil); // or .fail(op), or .unknown(op) on a timeout
    history.instant("driver", "counter", "read", groundhog_sim::Value::Nil, 1i64);
    ctx.check_linear("counter-linearizable", &Counter) // a minimal failing sub-history if not
}
