%% Twin of bench/selrecv.basm: K unmatched messages sit in the mailbox, then R wanted ones
%% arrive behind them and are received one by one.
%% erlc selrecv.erl && erl +S 1 -noshell -run selrecv main 10000 10000
-module(selrecv).
-export([main/1]).

main([KArg, RArg]) ->
    K = list_to_integer(KArg), R = list_to_integer(RArg),
    Me = self(),
    lists:foreach(fun(I) -> Me ! {junk, I} end, lists:seq(1, K)),
    T0 = erlang:monotonic_time(microsecond),
    spawn(fun() -> send_wanted(Me, 0, R) end),
    receive_wanted(R),
    Us = erlang:monotonic_time(microsecond) - T0,
    io:format("selrecv junk=~w wanted=~w us=~w ms=~w ns_per_recv=~w~n",
              [K, R, Us, Us div 1000, round(Us * 1000 / max(R, 1))]),
    halt().

send_wanted(_, R, R) -> ok;
send_wanted(To, I, R) -> To ! {wanted, I}, send_wanted(To, I + 1, R).

receive_wanted(0) -> ok;
receive_wanted(Left) ->
    receive {wanted, _} -> receive_wanted(Left - 1) end.
