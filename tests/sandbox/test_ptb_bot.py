"""A stock python-telegram-bot Bot drives the sandbox like the real Bot API."""

from __future__ import annotations

import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.sandbox import SandboxServer, User
from tests.sandbox.conftest import document_of, edited, query_of

PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    """Build a one-row inline keyboard from (text, callback_data) pairs."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d) for t, d in pairs]])


async def test_get_me_describes_the_configured_bot(tg: telegram.Bot) -> None:
    """getMe returns the sandbox bot's id and username."""
    me = await tg.get_me()
    assert me.is_bot
    assert me.id == 123456
    assert me.username == "reformbot_sandbox_bot"


async def test_send_message_with_keyboard_reaches_the_chat(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """An HTML message with an inline keyboard is stored with entities and markup."""
    sent = await tg.send_message(
        lan.id,
        "<b>Xin chào</b> chị Lan 👋",
        parse_mode="HTML",
        reply_markup=keyboard(("Đồng ý", "ok"), ("Hủy", "cancel")),
    )
    assert sent.text == "Xin chào chị Lan 👋"
    assert sent.entities[0].type == "bold"
    assert sent.entities[0].length == len("Xin chào")
    assert sent.from_user is not None
    assert sent.from_user.is_bot
    assert sent.chat.first_name == "Nguyễn Thị Lan"
    assert sent.reply_markup == keyboard(("Đồng ý", "ok"), ("Hủy", "cancel"))
    seen = server.messages(lan.id)
    assert [m["text"] for m in seen] == ["Xin chào chị Lan 👋"]
    assert seen[0]["sender"] == "bot"
    assert seen[0]["reply_markup"]["inline_keyboard"][0][1]["callback_data"] == "cancel"


async def test_edit_message_text_changes_text_and_keyboard(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """editMessageText updates the stored message; the same content again is refused."""
    sent = await tg.send_message(lan.id, "Chờ duyệt", reply_markup=keyboard(("Duyệt", "approve")))
    changed = edited(
        await tg.edit_message_text("Đã duyệt ✅", chat_id=lan.id, message_id=sent.message_id)
    )
    assert changed.text == "Đã duyệt ✅"
    assert changed.edit_date is not None
    assert changed.reply_markup is None
    view = server.messages(lan.id)[0]
    assert view["text"] == "Đã duyệt ✅"
    assert "reply_markup" not in view
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)message is not modified"):
        await tg.edit_message_text("Đã duyệt ✅", chat_id=lan.id, message_id=sent.message_id)


async def test_edit_reply_markup_and_answer_callback(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """A button press is answered and the keyboard replaced; the answer text is recorded."""
    sent = await tg.send_message(lan.id, "Chọn", reply_markup=keyboard(("A", "a"), ("B", "b")))
    update_id = server.press_button(lan.id, sent.message_id, "b")
    [update] = await tg.get_updates(timeout=0)
    assert update.update_id == update_id
    query = query_of(update)
    assert query.data == "b"
    assert query.message is not None
    assert query.message.message_id == sent.message_id
    assert await tg.answer_callback_query(query.id, text="Đã chọn B")
    new_markup = keyboard(("Chọn lại", "again"))
    changed = edited(
        await tg.edit_message_reply_markup(lan.id, sent.message_id, reply_markup=new_markup)
    )
    assert changed.reply_markup == new_markup
    answer = server.callback_answer(update_id)
    assert answer is not None
    assert answer.answered
    assert answer.text == "Đã chọn B"


async def test_send_document_and_download_it(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """An uploaded document keeps name and type; getFile gives a working download URL."""
    content = "Báo cáo quý III – cải cách hành chính".encode()
    sent = await tg.send_document(
        lan.id,
        document=content,
        filename="báo-cáo.txt",
        caption="<i>Bản nháp</i>",
        parse_mode="HTML",
    )
    document = document_of(sent)
    assert document.file_name == "báo-cáo.txt"
    assert document.mime_type == "text/plain"
    assert sent.caption == "Bản nháp"
    assert sent.caption_entities[0].type == "italic"
    remote = await tg.get_file(document.file_id)
    assert (remote.file_path or "").startswith(server.file_base_url)
    assert bytes(await remote.download_as_bytearray()) == content
    again = await tg.send_document(lan.id, document=document.file_id)
    assert document_of(again).file_id == document.file_id
    assert server.messages(lan.id)[0]["file_url"].startswith("/sandbox/api/files/")


async def test_send_photo_reports_its_size(tg: telegram.Bot, lan: User) -> None:
    """A PNG upload becomes a photo with its width and height."""
    sent = await tg.send_photo(lan.id, photo=PNG_1X1, caption="Ảnh")
    assert (sent.photo[-1].width, sent.photo[-1].height) == (1, 1)
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)image_process_failed"):
        await tg.send_photo(lan.id, photo=b"not an image")


async def test_delete_message_marks_it_deleted(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """deleteMessage succeeds once; the chat view marks the message deleted."""
    sent = await tg.send_message(lan.id, "Tạm thời")
    assert await tg.delete_message(lan.id, sent.message_id)
    assert server.messages(lan.id)[0]["deleted"] is True
    with pytest.raises(telegram.error.BadRequest, match="Message to delete not found"):
        await tg.delete_message(lan.id, sent.message_id)


async def test_commands_and_description_round_trip(tg: telegram.Bot) -> None:
    """setMyCommands/getMyCommands/deleteMyCommands and setMyDescription work."""
    commands = [telegram.BotCommand("start", "Bắt đầu"), telegram.BotCommand("help", "Trợ giúp")]
    assert await tg.set_my_commands(commands)
    assert list(await tg.get_my_commands()) == commands
    assert await tg.delete_my_commands()
    assert list(await tg.get_my_commands()) == []
    assert await tg.set_my_description("Trợ lý cải cách hành chính")
    assert (await tg.get_my_description()).description == "Trợ lý cải cách hành chính"
