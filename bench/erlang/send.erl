%% Twin of bench/send.basm: round trips through an echo process, first SMALL with {small, I},
%% then LARGE with {large, L} where L is a LEN-element list of integers. bytes counts the list
%% cells copied, 16 bytes each, both ways.
%% erlc send.erl && erl +S 1 -noshell -run send main 1000000 20000 1000
-module(send).
-export([main/1]).

main([SArg, LArg, LenArg]) ->
    Small = list_to_integer(SArg), Large = list_to_integer(LArg), Len = list_to_integer(LenArg),
    List = lists:seq(0, Len - 1),
    Me = self(),
    Echo = spawn(fun() -> echo(Me) end),
    T0 = erlang:monotonic_time(microsecond),
    small_trips(Echo, 0, Small),
    T1 = erlang:monotonic_time(microsecond),
    large_trips(Echo, List, Large),
    T2 = erlang:monotonic_time(microsecond),
    Echo ! stop,
    SmallUs = T1 - T0, LargeUs = T2 - T1,
    Bytes = 2 * Large * Len * 16,
    io:format("send small=~w small_us=~w small_ms=~w ns_per_msg=~w large=~w len=~w "
              "large_us=~w large_ms=~w bytes=~w mb_per_s=~w~n",
              [Small, SmallUs, SmallUs div 1000, round(SmallUs * 1000 / max(2 * Small, 1)),
               Large, Len, LargeUs, LargeUs div 1000, Bytes, round(Bytes / max(LargeUs, 1))]),
    halt().

small_trips(_, N, N) -> ok;
small_trips(Echo, I, N) ->
    Echo ! {small, I},
    receive {small, _} -> small_trips(Echo, I + 1, N) end.

large_trips(_, _, 0) -> ok;
large_trips(Echo, List, K) ->
    Echo ! {large, List},
    receive {large, _} -> large_trips(Echo, List, K - 1) end.

echo(Back) ->
    receive
        stop -> ok;
        Msg -> Back ! Msg, echo(Back)
    end.
